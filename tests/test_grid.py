"""Sample grids: tile layout, gutters, rows per class."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.grid import balanced_labels, grid_array, rows_per_class, save_grid


def test_tiles_sit_in_row_major_order_between_white_gutters():
    # Image i is filled with the value i, so every tile says where it came from.
    images = torch.arange(7, dtype=torch.uint8).view(7, 1, 1, 1).expand(7, 1, 4, 4).contiguous()
    grid = grid_array(images, nrow=3, scale=1)
    assert grid.shape == (3 * 6 + 2, 3 * 6 + 2, 3)  # 3 rows (7 images, 3 per row) of 4 px + 2 px gutters
    for i in range(7):
        top, left = (i // 3) * 6 + 2, (i % 3) * 6 + 2
        assert (grid[top:top + 4, left:left + 4] == i).all()
    assert (grid[:2] == 255).all() and (grid[:, :2] == 255).all()  # outer gutters
    assert (grid[14:, 14:] == 255).all()  # the two unused tiles of the last row stay blank


def test_scale_repeats_pixels_and_grayscale_becomes_rgb():
    images = torch.randint(0, 256, (4, 1, 5, 5), dtype=torch.uint8)
    small, big = grid_array(images, scale=1), grid_array(images, scale=2)
    assert np.array_equal(big, small.repeat(2, axis=0).repeat(2, axis=1))
    assert np.array_equal(small[..., 0], small[..., 2])


def test_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        grid_array(torch.zeros(2, 1, 4, 4))


def test_rows_per_class_puts_class_k_on_row_k(tmp_path):
    labels = balanced_labels(30, 10)
    images = labels.to(torch.uint8).view(30, 1, 1, 1).expand(30, 1, 2, 2)
    ordered = rows_per_class(images, labels, 10, per_row=3)
    assert ordered[:, 0, 0, 0].tolist() == [k for k in range(10) for _ in range(3)]
    save_grid(tmp_path / "g.png", ordered, nrow=3)
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]
