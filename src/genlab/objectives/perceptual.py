"""Perceptual features for content losses (SRGAN's): ImageNet VGG19's conv3_4, as the PyTorch-GAN catalogue's
srgan.py uses them, read from torchvision's weights file when it is on disk (nothing is downloaded)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

VGG19_WEIGHTS = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet VGG19, in torch hub's checkpoint cache


def vgg19_weights_path() -> Path:
    """Where torch hub keeps torchvision's VGG19 weights (the file may be missing)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_WEIGHTS


class ImageNetFeatures(nn.Module):
    """VGG features of images in [0, 1]: grey repeated to RGB, ImageNet mean/std normalised."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        return self.features((x.expand(-1, 3, -1, -1) - self.mean) / self.std)


def vgg19_conv3_4(path: Path) -> ImageNetFeatures:
    """VGG19's layers up to conv3_4 (and its ReLU) with the ImageNet weights in `path`."""
    from torchvision.models import vgg19

    net = vgg19()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return ImageNetFeatures(net.features[:18])
