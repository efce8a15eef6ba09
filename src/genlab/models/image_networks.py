"""Image-to-image networks: the U-Net and PatchGAN of pix2pix, the ResNet generators of CycleGAN,
SRGAN and PixelDA, and PixelDA's task classifier.

Each takes channels and side, so one definition serves 28x28 Fashion-MNIST tasks and the
catalogue's 256x256 photographs: encoders add one stride-2 block per halving of the side, up to
the paper's depth (`halvings`).
"""
from __future__ import annotations

import torch
from torch import nn


def halvings(side: int, limit: int) -> int:
    """How many stride-2 blocks fit: halve while the side stays a whole number, at most `limit`."""
    count = 0
    while side % 2 == 0 and side > 1 and count < limit:
        side //= 2
        count += 1
    return count


def _norm(channels: int, kind: str) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False) if kind == "instance" else nn.BatchNorm2d(channels)


class UNet(nn.Module):
    """pix2pix's U-Net generator (Isola et al. 2017): 4x4 stride-2 convs down to 1x1 at 256 (8
    blocks; fewer at smaller sides), transposed convs up with skip connections, dropout 0.5 in the
    three innermost up blocks, InstanceNorm as in PyTorch-GAN, tanh output."""

    def __init__(self, in_channels: int, out_channels: int, side: int, width: int = 64, max_depth: int = 8,
                 dropout: float = 0.5):
        super().__init__()
        depth = halvings(side, max_depth)
        if depth < 1:
            raise ValueError(f"U-Net needs an even side, got {side}")
        widths = [width * min(2 ** i, 8) for i in range(depth)]
        self.down = nn.ModuleList()
        fan_in, size = in_channels, side
        for i, w in enumerate(widths):
            size //= 2
            layers: list[nn.Module] = [nn.Conv2d(fan_in, w, 4, 2, 1, bias=False)]
            if 0 < i and size > 1:  # no norm on the first block (pix2pix) nor on a 1x1 map
                layers.append(nn.InstanceNorm2d(w))
            layers.append(nn.LeakyReLU(0.2))
            self.down.append(nn.Sequential(*layers))
            fan_in = w
        self.up = nn.ModuleList()
        for i in reversed(range(depth - 1)):  # to the size of down block i, then joined with it
            layers = [nn.ConvTranspose2d(fan_in, widths[i], 4, 2, 1, bias=False), nn.InstanceNorm2d(widths[i]),
                      nn.ReLU()]
            if depth - 2 - i < 3 and dropout:
                layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
            fan_in = 2 * widths[i]
        self.final = nn.Sequential(nn.ConvTranspose2d(fan_in, out_channels, 4, 2, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            x = torch.cat([block(x), skips.pop()], dim=1)
        return self.final(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix): 4x4 stride-2 blocks (up to 4: a 70x70 receptive field at 256), then a 3x3
    conv to one logit per patch: the output is a map, one real/fake score per image region."""

    def __init__(self, in_channels: int, side: int, width: int = 64, max_blocks: int = 4,
                 norm: str | None = "instance"):
        super().__init__()
        blocks = max(1, halvings(side, max_blocks))
        layers: list[nn.Module] = []
        fan_in = in_channels
        for i in range(blocks):
            w = width * min(2 ** i, 8)
            layers.append(nn.Conv2d(fan_in, w, 4, 2, 1))
            if i > 0 and norm:
                layers.append(_norm(w, norm))
            layers.append(nn.LeakyReLU(0.2))
            fan_in = w
        layers.append(nn.Conv2d(fan_in, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str = "instance", activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), _norm(channels, norm), activation(),
                                   nn.Conv2d(channels, channels, 3, 1, 1), _norm(channels, norm))

    def forward(self, x):
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator (Zhu et al. 2017, after Johnson et al. 2016): 7x7 conv, `downs` stride-2
    convs, residual blocks, as many transposed convs up, 7x7 conv, tanh. With downs=0 it is
    PixelDA's generator (Bousmalis et al. 2017), which keeps the full resolution throughout."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 64, blocks: int = 9, downs: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 7, 1, 3), nn.InstanceNorm2d(width), nn.ReLU()]
        w = width
        for _ in range(downs):
            layers += [nn.Conv2d(w, 2 * w, 3, 2, 1), nn.InstanceNorm2d(2 * w), nn.ReLU()]
            w *= 2
        layers += [ResidualBlock(w) for _ in range(blocks)]
        for _ in range(downs):
            layers += [nn.ConvTranspose2d(w, w // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(w // 2), nn.ReLU()]
            w //= 2
        layers += [nn.Conv2d(w, out_channels, 7, 1, 3), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SRResNet(nn.Module):
    """SRGAN's generator (Ledig et al. 2017): 9x9 conv + PReLU, residual blocks (conv-BN-PReLU-conv-BN),
    conv-BN with a long skip, one (conv, PixelShuffle x2, PReLU) per doubling, 9x9 conv, tanh."""

    def __init__(self, in_channels: int, out_channels: int, factor: int, width: int = 64, blocks: int = 16):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(in_channels, width, 9, 1, 4), nn.PReLU())
        self.body = nn.Sequential(*[ResidualBlock(width, norm="batch", activation=nn.PReLU) for _ in range(blocks)],
                                  nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width))
        ups: list[nn.Module] = []
        for _ in range(factor.bit_length() - 1):
            ups += [nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU()]
        self.tail = nn.Sequential(*ups, nn.Conv2d(width, out_channels, 9, 1, 4), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        return self.tail(head + self.body(head))


class TaskClassifier(nn.Module):
    """PixelDA's task classifier: 3x3 stride-2 conv blocks (LeakyReLU, InstanceNorm) while the side
    halves (at most 4), then a linear layer to class logits."""

    def __init__(self, in_channels: int, side: int, num_classes: int, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        fan_in, size = in_channels, side
        for i in range(max(1, halvings(side, 4))):
            w = width * 2 ** i
            layers += [nn.Conv2d(fan_in, w, 3, 2, 1), nn.LeakyReLU(0.2)]
            if i > 0:
                layers.append(nn.InstanceNorm2d(w))
            fan_in, size = w, (size + 1) // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(fan_in * size * size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))
