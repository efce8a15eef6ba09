"""Metrics on the real shipped Inception weights and real torch-fidelity code (no mocks).

Kept small for a 2-core CPU: 16 images per set, 28x28 grayscale, features computed once per module.
Each full FID costs ~4 s here (torch-fidelity takes eigvals of a 2048x2048 non-symmetric matrix), so
one check uses all 2048 dims and the others a slice.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from genlab.metrics import (
    INCEPTION_EXTRACTOR,
    compute_fid_kid,
    extract_features,
    feature_protocol,
    load_features,
    save_features,
    weights_identity,
)

N = 16
NOISE_SIGMAS = (16.0, 48.0, 128.0)


def blob_images(n: int, seed: int) -> np.ndarray:
    """(n, 1, 28, 28) uint8 images of a few bright Gaussian blobs: structured, deterministic."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    centers = rng.uniform(6, 22, size=(n, 3, 2, 1, 1))
    widths = rng.uniform(1.5, 4.0, size=(n, 3, 1, 1))
    d2 = (yy - centers[:, :, 0]) ** 2 + (xx - centers[:, :, 1]) ** 2
    img = np.exp(-d2 / (2 * widths**2)).sum(axis=1).clip(0, 1)
    return (img * 255).round().astype(np.uint8)[:, None]


def add_noise(images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, size=images.shape)
    return (images + noise).clip(0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def clean_images() -> np.ndarray:
    return blob_images(N, seed=0)


@pytest.fixture(scope="module")
def features(clean_images) -> dict:
    """fp32 features of the clean set and of each noise level (one extraction pass for the module)."""
    sets = [clean_images] + [add_noise(clean_images, s, seed=i + 1) for i, s in enumerate(NOISE_SIGMAS)]
    feats = extract_features(np.concatenate(sets), precision="fp32", device="cpu")
    chunks = np.split(feats, len(sets))
    return {"clean": chunks[0], **{sigma: chunk for sigma, chunk in zip(NOISE_SIGMAS, chunks[1:])}}


@pytest.fixture(scope="module")
def noise_metrics(features) -> list[dict]:
    """FID/KID of each noise level against the clean set, in rising noise order, on the first 512 feature
    dims: the ordering is the metric's, not the dimension's (2048-d FID costs ~4 s here, 512-d ~0.2 s;
    the full 2048-d FID is checked on the set against itself)."""
    return [compute_fid_kid(features[sigma][:, :512], features["clean"][:, :512]) for sigma in NOISE_SIGMAS]


def test_extractor_registered_with_torch_fidelity():
    assert INCEPTION_EXTRACTOR in FEATURE_EXTRACTORS_REGISTRY
    ident = weights_identity()
    assert ident["file"] == "default_1.pt" and len(ident["sha256"]) == 64


def test_features_shape_and_finite(features):
    clean = features["clean"]
    assert clean.shape == (N, 2048) and clean.dtype == np.float32
    assert np.isfinite(clean).all()
    # pool3 features follow a ReLU and an average pool: non-negative, and not all zero.
    assert clean.min() >= 0 and clean.std() > 0


def test_onnxruntime_matches_torchscript_and_repeats_exactly(clean_images, features):
    # `features` came from the default runtime, which is ONNX Runtime for fp32 on this CPU.
    torch_feats = extract_features(clean_images[:4], precision="fp32", device="cpu", runtime="torch")
    ort_feats = extract_features(clean_images[:4], precision="fp32", device="cpu", runtime="onnxruntime")
    assert np.array_equal(ort_feats, features["clean"][:4])  # same runtime, same bytes
    # Two runtimes of one graph: equal up to float32 summation order (measured max ~6e-6 of values ~6).
    np.testing.assert_allclose(ort_feats, torch_feats, rtol=0, atol=1e-4)


def test_the_saved_optimized_onnx_graph_gives_the_features_of_a_freshly_optimized_one(tmp_path, monkeypatch,
                                                                                     clean_images):
    import onnxruntime

    from genlab.metrics import inception

    real = inception.optimized_onnx_path(onnxruntime.__version__)  # keyed by graph, ORT version and this CPU
    assert real.parent == inception.onnx_path().parent and f"ort{onnxruntime.__version__}-cpu" in real.name
    saved = tmp_path / "optimized.onnx"
    monkeypatch.setattr(inception, "optimized_onnx_path", lambda version: saved)
    x = torch.from_numpy(clean_images[:2]).float().expand(-1, 3, -1, -1)
    x = torch.nn.functional.interpolate(x, size=(299, 299)) / 128 - 1
    fresh = inception._OnnxRunner()  # optimizes the exported graph and saves the result
    assert saved.stat().st_size > 0 and not list(tmp_path.glob(".*.tmp"))
    loaded = inception._OnnxRunner()  # loads the saved graph, optimizations off
    options = loaded.session.get_session_options()
    assert options.graph_optimization_level == onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert torch.equal(fresh(x), loaded(x))


def test_runtime_resolution():
    from genlab.metrics.inception import resolve_runtime

    assert resolve_runtime("auto", "cpu", "fp32") == "onnxruntime"
    assert resolve_runtime("auto", "cpu", "bf16") == "torch"
    assert resolve_runtime("torch", "cpu", "fp32") == "torch"
    with pytest.raises(ValueError, match="eval.runtime: onnxruntime runs fp32 on the CPU only"):
        resolve_runtime("onnxruntime", "cpu", "bf16")


def test_bf16_close_to_fp32(clean_images, features):
    # Two images only: bf16 autocast is emulated (slow) on an AVX2-only CPU.
    bf16 = extract_features(clean_images[:2], precision="bf16", device="cpu")
    fp32 = features["clean"][:2]
    rel = np.linalg.norm(bf16 - fp32) / np.linalg.norm(fp32)
    # Measured: ~1.5% on uniform-noise images but 7-13% on these mostly-black upsampled digits-like
    # images, hence the loose bound (and why precision is part of every metric's protocol).
    assert rel < 0.25


def test_fid_of_set_with_itself_is_zero(features):
    feats = features["clean"]
    out = compute_fid_kid(feats, feats)
    assert set(out) == {"fid", "kid_mean", "kid_std"}
    # Exact answer is 0; the eigenvalue route leaves rounding of order 1e-5 against a trace of
    # covariance in the tens, so 1e-3 is tight yet safe.
    assert abs(out["fid"]) < 1e-3


def test_fid_and_kid_grow_with_noise(noise_metrics):
    fids = [r["fid"] for r in noise_metrics]
    kids = [r["kid_mean"] for r in noise_metrics]
    assert fids == sorted(fids) and fids[0] > 1.0, fids
    assert kids == sorted(kids) and kids[0] > 0, kids


def test_fid_kid_deterministic(features):
    # A 256-d slice keeps FID cheap; determinism does not depend on the dimension.
    fake, real = features[48.0][:, :256], features["clean"][:, :256]
    a = compute_fid_kid(fake, real, kid_subsets=20, seed=3)
    assert a == compute_fid_kid(fake.copy(), real.copy(), kid_subsets=20, seed=3)
    assert a["kid_mean"] != compute_fid_kid(fake, real, kid_subset_size=N // 2, kid_subsets=20, seed=4)["kid_mean"]


def test_save_load_round_trip_byte_stable(tmp_path, features):
    feats = features["clean"]
    protocol = feature_protocol(n=len(feats), dataset="blobs", split="test", precision="fp32",
                                runtime="onnxruntime")
    assert protocol["weights_sha256"] == weights_identity()["sha256"]

    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    save_features(first, feats, protocol)
    time.sleep(1.1)  # HDF5 timestamps have 1 s resolution: make any leaked timestamp differ
    save_features(second, feats, protocol)
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5"]  # no temp files left

    loaded, loaded_protocol = load_features(first)
    assert loaded.dtype == feats.dtype and np.array_equal(loaded, feats)
    assert loaded_protocol == protocol


def test_save_rejects_mismatched_protocol(tmp_path, features):
    with pytest.raises(ValueError):
        save_features(tmp_path / "x.h5", features["clean"], {"N": 5})


def test_missing_inception_logits_weights_give_null_is_with_a_reason(tmp_path):
    from genlab.metrics.inception_score import inception_score

    missing = tmp_path / "weights-inception.pth"
    record = inception_score(np.zeros((4, 1, 28, 28), np.uint8),
                             {"inception_weights": str(missing), "device": "cpu", "precision": "fp32", "batch_size": 4},
                             seed=0)
    assert record["value"] is None
    assert str(missing) in record["reason"] and "eval.inception_weights" in record["reason"]


def test_unreadable_inception_logits_weights_give_null_is_with_a_reason(tmp_path):
    from genlab.metrics.inception_score import inception_score

    corrupt = tmp_path / "weights-inception.pth"
    corrupt.write_bytes(b"not a checkpoint")
    record = inception_score(np.zeros((4, 1, 28, 28), np.uint8),
                             {"inception_weights": str(corrupt), "device": "cpu", "precision": "fp32", "batch_size": 4},
                             seed=0)
    assert record["value"] is None and "could not load" in record["reason"]


def test_precision_recall_of_a_set_with_itself_is_one_and_of_a_distant_set_is_zero():
    from genlab.metrics.fid import compute_precision_recall

    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 64))
    same = compute_precision_recall(real, real)
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    far = compute_precision_recall(real + 100.0, real)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    # a sample set covering half the modes: high precision, low recall
    modes = np.concatenate([rng.normal(0, 1, (100, 64)), rng.normal(50, 1, (100, 64))])
    half = compute_precision_recall(modes[:100][:80], modes)
    assert half["precision"] > 0.9 and half["recall"] < 0.6
