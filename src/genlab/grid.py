"""Image grids: one PNG of many samples, rows per class for conditional models."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genlab.io import atomic_path


def grid_array(images_uint8: torch.Tensor | np.ndarray, nrow: int | None = None, scale: int = 2) -> np.ndarray:
    """(N, C, H, W) uint8 -> (H', W', 3) uint8 grid with 2-pixel gutters, upscaled for viewing."""
    images = torch.as_tensor(images_uint8)
    if images.dtype != torch.uint8 or images.dim() != 4 or images.size(1) not in (1, 3):
        raise ValueError(f"expected uint8 (N, 1 or 3, H, W) images, got {images.dtype} {tuple(images.shape)}")
    n, _, h, w = images.shape
    cols = min(nrow or math.ceil(math.sqrt(n)), n)
    rows = math.ceil(n / cols)
    pad = 2
    # torchvision's make_grid layout (a `pad` gutter around every tile), without importing torchvision:
    # its import alone costs ~3 s per stage here.
    grid = torch.full((3, rows * (h + pad) + pad, cols * (w + pad) + pad), 255, dtype=torch.uint8)
    tiles = images.expand(-1, 3, -1, -1)
    for i in range(n):
        top, left = (i // cols) * (h + pad) + pad, (i % cols) * (w + pad) + pad
        grid[:, top:top + h, left:left + w] = tiles[i]
    if scale > 1:
        grid = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return grid.permute(1, 2, 0).contiguous().numpy()


def save_grid(path: Path, images_uint8, nrow: int | None = None) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(grid_array(images_uint8, nrow)).save(tmp, format="PNG")


def to_uint8(images_unit: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] -> uint8 with rounding (not truncation)."""
    return (images_unit.float().clamp(0, 1) * 255).round().to(torch.uint8)


def balanced_labels(n: int, num_classes: int, device=None) -> torch.Tensor:
    """0, 1, ..., K-1, 0, 1, ...: every class equally often (to within one)."""
    return torch.arange(n, device=device) % num_classes


def rows_per_class(images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_row: int) -> torch.Tensor:
    """Reorder so that row k of a grid with `per_row` columns holds class k."""
    rows = [images[labels == k][:per_row] for k in range(num_classes)]
    return torch.cat(rows)
