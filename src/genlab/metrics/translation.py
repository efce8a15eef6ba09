"""Pixel metrics of image-to-image translation: PSNR, SSIM and L1 between uint8 image sets, and the
identity baseline's output (the input brought to the target's geometry).

Images are compared in [0, 1] (uint8 / 255, so the data range is 1), in float64.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 1.0
_CHUNK = 256  # images per SSIM batch: bounded memory for large sets


def _unit(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).to(torch.float64) / 255.0


def _check_pair(outputs: np.ndarray, targets: np.ndarray, what: str) -> None:
    if outputs.shape != targets.shape:
        raise ValueError(f"{what}: shapes differ, {tuple(outputs.shape)} vs {tuple(targets.shape)}; both must be "
                         f"uint8 (n, C, H, W) of one geometry (re-run the evaluate stage)")
    if outputs.dtype != np.uint8 or targets.dtype != np.uint8 or outputs.ndim != 4:
        raise ValueError(f"{what}: expected uint8 (n, C, H, W) images, got {outputs.dtype} and {targets.dtype} "
                         f"{tuple(outputs.shape)}")
    if len(outputs) == 0:
        raise ValueError(f"{what}: no images given")


def psnr(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean over images of each image's PSNR in dB, 10 log10(1 / MSE) with data range 1; inf when
    some output equals its target exactly."""
    _check_pair(outputs, targets, "psnr")
    mse = ((_unit(outputs) - _unit(targets)) ** 2).flatten(1).mean(1)
    with np.errstate(divide="ignore"):
        per_image = 10.0 * np.log10(DATA_RANGE**2 / mse.numpy())
    return float(per_image.mean())


def l1(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean absolute difference over every pixel and channel, in [0, 1]."""
    _check_pair(outputs, targets, "l1")
    return float((_unit(outputs) - _unit(targets)).abs().mean())


def _gaussian_window() -> torch.Tensor:
    """The normalised 1-D Gaussian (11 taps, sigma 1.5) that scipy's gaussian_filter uses for
    skimage's SSIM with gaussian_weights=True (truncate 3.5 -> radius 5)."""
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64) - SSIM_WINDOW // 2
    g = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of (B, 1, H, W), valid region only (skimage crops the same border)."""
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))


def ssim_per_image(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """SSIM (Wang et al. 2004) of each pair: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data
    range 1, population covariance; the mean SSIM map of each channel, averaged over channels."""
    _check_pair(outputs, targets, "ssim")
    n, c, h, w = outputs.shape
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"ssim: images of {h}x{w} are smaller than its {SSIM_WINDOW}x{SSIM_WINDOW} window")
    g = _gaussian_window()
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    scores = []
    for start in range(0, n, _CHUNK):
        x = _unit(outputs[start:start + _CHUNK]).reshape(-1, 1, h, w)
        y = _unit(targets[start:start + _CHUNK]).reshape(-1, 1, h, w)
        mx, my = _filter(x, g), _filter(y, g)
        vx, vy, cxy = _filter(x * x, g) - mx**2, _filter(y * y, g) - my**2, _filter(x * y, g) - mx * my
        smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        scores.append(smap.flatten(1).mean(1).view(-1, c).mean(1))
    return torch.cat(scores).numpy()


def ssim(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean SSIM over images (see ssim_per_image)."""
    return float(ssim_per_image(outputs, targets).mean())
