"""Network building blocks shared by the models: MLP and convolutional generators/critics.

Each takes the image shape (C, H, W) so one definition serves 28x28 grayscale and 32x32
or 64x64 colour data.
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


def _check_size(image_shape: tuple[int, int, int]) -> int:
    _, h, w = image_shape
    if h != w or h % 4:
        raise ValueError(f"convolutional models need square images with a side divisible by 4, got {h}x{w}")
    return h // 4


class ConvGenerator(nn.Module):
    """DCGAN generator (seed 000, Radford et al. 2015) adapted to any side divisible by 4.

    z -> ConvTranspose to (4w, s, s) with s = side/4 -> two stride-2 ConvTranspose 4x4 blocks
    with BatchNorm + ReLU -> 3x3 conv to C channels. For 28x28 this is 7 -> 14 -> 28.
    """

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], width: int = 64,
                 out_activation: str = "tanh"):
        super().__init__()
        start = _check_size(image_shape)
        channels = image_shape[0]
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 4 * width, start, 1, 0, bias=False),
            nn.BatchNorm2d(4 * width), nn.ReLU(True),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * width), nn.ReLU(True),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(True),
            nn.Conv2d(width, channels, 3, 1, 1),
            nn.Tanh() if out_activation == "tanh" else nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z.view(z.size(0), -1, 1, 1))


class ConvDiscriminator(nn.Module):
    """DCGAN discriminator: stride-2 4x4 convs with LeakyReLU(0.2), BatchNorm after the first.

    `features` returns the flattened last feature map so heads (class logits for ACGAN/SGAN)
    can share the trunk; `normalization=False` drops BatchNorm, as WGAN-GP and DRAGAN require
    (a per-sample gradient penalty is not defined through batch statistics).
    """

    def __init__(self, image_shape: tuple[int, int, int], width: int = 64, out_features: int = 1,
                 normalization: bool = True):
        super().__init__()
        start = _check_size(image_shape)
        norm = (lambda c: nn.BatchNorm2d(c)) if normalization else (lambda c: nn.Identity())
        self.trunk = nn.Sequential(
            nn.Conv2d(image_shape[0], width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=not normalization), norm(2 * width), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 4 * width, 3, 1, 1, bias=not normalization), norm(4 * width), nn.LeakyReLU(0.2, True),
            nn.Flatten(),
        )
        self.feature_dim = 4 * width * start * start
        self.head = nn.Linear(self.feature_dim, out_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

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
