"""PSNR, SSIM and L1 of image-to-image translation, and the identity baseline's output geometry."""
from __future__ import annotations

import math

import numpy as np
import pytest

from genlab.data.tasks import to_target_geometry
from genlab.metrics.translation import l1, psnr, ssim, ssim_per_image


def noisy_pair(shape=(3, 3, 32, 30), sigma=30.0, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 256, shape, dtype=np.uint8)
    noisy = np.clip(clean + rng.normal(0, sigma, shape), 0, 255).round().astype(np.uint8)
    return noisy, clean


def test_identical_images_give_infinite_psnr_ssim_one_and_zero_l1():
    images, _ = noisy_pair()
    assert psnr(images, images) == math.inf
    assert ssim(images, images) == pytest.approx(1.0, abs=1e-12)
    assert l1(images, images) == 0.0


def test_known_values_of_a_constant_difference():
    targets = np.full((2, 1, 16, 16), 100, np.uint8)
    outputs = targets + np.uint8(51)  # 51/255 = 0.2 everywhere
    assert l1(outputs, targets) == pytest.approx(0.2)
    assert psnr(outputs, targets) == pytest.approx(10 * math.log10(1 / 0.04))  # 13.98 dB
    # constant images: no variance, so SSIM is its luminance term (2 mx my + C1) / (mx^2 + my^2 + C1)
    mx, my, c1 = 151 / 255, 100 / 255, 0.01**2
    assert ssim(outputs, targets) == pytest.approx((2 * mx * my + c1) / (mx**2 + my**2 + c1))


def test_psnr_is_the_mean_of_per_image_psnr():
    outputs, targets = noisy_pair(shape=(4, 1, 12, 12))
    mse = ((outputs / 255.0 - targets / 255.0) ** 2).reshape(4, -1).mean(1)
    assert psnr(outputs, targets) == pytest.approx(np.mean(10 * np.log10(1 / mse)))


def test_ssim_and_psnr_match_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    outputs, targets = noisy_pair()
    expected = [metrics.structural_similarity(o / 255.0, t / 255.0, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=1, channel_axis=0)
                for o, t in zip(outputs, targets)]
    np.testing.assert_allclose(ssim_per_image(outputs, targets), expected, rtol=0, atol=1e-12)
    expected_psnr = [metrics.peak_signal_noise_ratio(t / 255.0, o / 255.0, data_range=1)
                     for o, t in zip(outputs, targets)]
    assert psnr(outputs, targets) == pytest.approx(np.mean(expected_psnr), rel=1e-12)


def test_ssim_falls_with_noise():
    scores = [ssim(*noisy_pair(sigma=s)) for s in (5.0, 30.0, 90.0)]
    assert scores == sorted(scores, reverse=True) and scores[0] < 1.0


def test_mismatched_or_small_images_are_refused_with_their_shapes():
    a = np.zeros((2, 1, 16, 16), np.uint8)
    with pytest.raises(ValueError, match=r"shapes differ, \(2, 1, 16, 16\) vs \(2, 3, 16, 16\)"):
        psnr(a, np.zeros((2, 3, 16, 16), np.uint8))
    with pytest.raises(ValueError, match="smaller than its 11x11 window"):
        ssim(np.zeros((1, 1, 7, 7), np.uint8), np.zeros((1, 1, 7, 7), np.uint8))


def test_identity_output_is_nearest_upsampled_and_grey_replicated():
    grey = np.arange(2 * 1 * 7 * 7, dtype=np.uint8).reshape(2, 1, 7, 7)
    out = to_target_geometry(grey, (3, 28, 28))
    assert out.shape == (2, 3, 28, 28) and out.flags["C_CONTIGUOUS"]
    assert (out[:, 0] == out[:, 2]).all() and (out[:, 0, ::4, ::4] == grey[:, 0]).all()
    assert (out[:, 1, 4 * 3 + 3, 4 * 5] == grey[:, 0, 3, 5]).all()
    same = np.zeros((1, 3, 8, 8), np.uint8)
    assert to_target_geometry(same, (3, 8, 8)).shape == (1, 3, 8, 8)
    import torch

    odd = to_target_geometry(grey, (1, 32, 30))  # not an integer factor: torch's nearest interpolation
    expected = torch.nn.functional.interpolate(torch.from_numpy(grey).float(), size=(32, 30), mode="nearest")
    assert np.array_equal(odd, expected.to(torch.uint8).numpy())
    with pytest.raises(ValueError, match="only grey inputs"):
        to_target_geometry(np.zeros((1, 3, 7, 7), np.uint8), (4, 7, 7))
