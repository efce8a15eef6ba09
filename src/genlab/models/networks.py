"""Network building blocks shared by the models: MLP and convolutional generators/critics.

Each takes the image shape (C, H, W) so one definition serves 28x28 grayscale and 32x32
or 64x64 colour data: MLPs at any shape, conv nets at square sides divisible by 4, with one
stride-2 block per halving of the side (`stride2_blocks`). At 28x28 every network is layer
for layer (and, with the same seed, weight for weight) the one built before other sizes existed.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class MLPGenerator(nn.Module):
    """z (+ label embedding) -> 128 -> 256 -> 512 -> 1024 -> image, tanh output.

    The layout of the PyTorch-GAN `gan`/`cgan` scripts and the MNIST CGAN of seed 004.
    BatchNorm1d's eps of 0.8 is theirs too (the positional argument is eps, not momentum);
    it is kept because those scripts' published samples were trained with it.
    """

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], num_classes: int = 0,
                 out_activation: str = "tanh"):
        super().__init__()
        self.image_shape = image_shape
        self.label_emb = nn.Embedding(num_classes, num_classes) if num_classes else None
        widths = (128, 256, 512, 1024)
        layers: list[nn.Module] = []
        fan_in = latent_dim + num_classes
        for i, width in enumerate(widths):
            layers.append(nn.Linear(fan_in, width))
            if i > 0:
                layers.append(nn.BatchNorm1d(width, eps=0.8))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            fan_in = width
        layers.append(nn.Linear(fan_in, math.prod(image_shape)))
        layers.append(nn.Tanh() if out_activation == "tanh" else nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_emb is not None:
            z = torch.cat([z, self.label_emb(labels).to(z.dtype)], dim=1)
        return self.net(z).view(z.size(0), *self.image_shape)


class MLPDiscriminator(nn.Module):
    """Flattened image (+ label embedding) -> hidden layers -> one logit (no sigmoid)."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int = 0,
                 hidden: tuple[int, ...] = (512, 256), dropout: float = 0.0, out_features: int = 1):
        super().__init__()
        self.label_emb = nn.Embedding(num_classes, num_classes) if num_classes else None
        layers: list[nn.Module] = []
        fan_in = math.prod(image_shape) + num_classes
        for i, width in enumerate(hidden):
            layers.append(nn.Linear(fan_in, width))
            if dropout and i > 0:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            fan_in = width
        layers.append(nn.Linear(fan_in, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)
        if self.label_emb is not None:
            h = torch.cat([h, self.label_emb(labels).to(h.dtype)], dim=1)
        out = self.net(h)
        return out.squeeze(1) if out.size(1) == 1 else out


def stride2_blocks(side: int) -> int:
    """How many times `side` halves while it is even and larger than 7: 28 -> 2, 32 -> 3, 64 -> 4.

    The conv nets use one stride-2 block per halving, as seed 000's 64x64 DCGAN does
    (64 -> 32 -> 16 -> 8 -> 4); the smallest map is 7x7 at 28 and 4x4 at 32 and 64.
    """
    blocks = 0
    while side % 2 == 0 and side > 7:
        side //= 2
        blocks += 1
    return blocks


def conv_shape_problem(image_shape: tuple[int, int, int]) -> str | None:
    """Why the conv generator/discriminator cannot take `image_shape`, or None when they can."""
    _, h, w = image_shape
    if h != w or h % 4 or h < 8:
        return "its convolutional networks need square images with a side divisible by 4 (at least 8)"
    return None


def _blocks(image_shape: tuple[int, int, int]) -> int:
    problem = conv_shape_problem(image_shape)
    if problem:
        raise ValueError(f"{problem}, got {image_shape[1]}x{image_shape[2]}")
    return stride2_blocks(image_shape[1])


class ConvGenerator(nn.Module):
    """DCGAN generator (seed 000, Radford et al. 2015) for square sides divisible by 4.

    z -> ConvTranspose to (width * 2**b, s, s), then b stride-2 ConvTranspose 4x4 blocks with
    BatchNorm + ReLU, each halving the channels, then a 3x3 conv to C channels. b is
    `stride2_blocks(side)` and s = side / 2**b: 28 is 7 -> 14 -> 28 (4w, 2w, w), 32 is
    4 -> 8 -> 16 -> 32 (8w ... w), 64 is 4 -> ... -> 64 (16w ... w).
    """

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], width: int = 64,
                 out_activation: str = "tanh"):
        super().__init__()
        blocks = _blocks(image_shape)
        start = image_shape[1] >> blocks
        channels = width << blocks
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, channels, start, 1, 0, bias=False),
                                   nn.BatchNorm2d(channels), nn.ReLU(True)]
        for _ in range(blocks):
            layers += [nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(channels // 2), nn.ReLU(True)]
            channels //= 2
        layers += [nn.Conv2d(width, image_shape[0], 3, 1, 1),
                   nn.Tanh() if out_activation == "tanh" else nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z.view(z.size(0), -1, 1, 1))


class ConvDiscriminator(nn.Module):
    """DCGAN discriminator: b stride-2 4x4 convs (width, 2 width, ..., b = `stride2_blocks(side)`)
    with LeakyReLU(0.2) and BatchNorm after all but the first, then a 3x3 conv doubling the channels
    once more and a linear head. For 28x28 that is 14x14 (w) -> 7x7 (2w) -> 7x7 (4w); for 64x64,
    as in seed 000, 32 (w) -> 16 (2w) -> 8 (4w) -> 4 (8w), then 4x4 (16w).

    `out_features` > 1 gives the class logits of ACGAN/SGAN from the same trunk;
    `normalization=False` drops BatchNorm, as WGAN-GP and DRAGAN require (a per-sample gradient
    penalty is not defined through batch statistics).
    """

    def __init__(self, image_shape: tuple[int, int, int], width: int = 64, out_features: int = 1,
                 normalization: bool = True):
        super().__init__()
        blocks = _blocks(image_shape)
        end = image_shape[1] >> blocks

        def norm(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if normalization else nn.Identity()

        layers: list[nn.Module] = [nn.Conv2d(image_shape[0], width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        channels = width
        for _ in range(blocks - 1):
            layers += [nn.Conv2d(channels, 2 * channels, 4, 2, 1, bias=not normalization),
                       norm(2 * channels), nn.LeakyReLU(0.2, True)]
            channels *= 2
        layers += [nn.Conv2d(channels, 2 * channels, 3, 1, 1, bias=not normalization),
                   norm(2 * channels), nn.LeakyReLU(0.2, True), nn.Flatten()]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(2 * channels * end * end, out_features)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        out = self.head(self.trunk(x))
        return out.squeeze(1) if out.size(1) == 1 else out


class LabelledGenerator(nn.Module):
    """A generator fed z joined to a learned label embedding (ACGAN's conditional input)."""

    def __init__(self, num_classes: int, generator: nn.Module):
        super().__init__()
        self.label_emb = nn.Embedding(num_classes, num_classes)
        self.generator = generator

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.generator(torch.cat([z, self.label_emb(labels).to(z.dtype)], dim=1))
