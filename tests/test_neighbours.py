"""Tests of genlab.metrics.neighbours: density/coverage, nearest, data-copying C_T, FID_inf."""
import numpy as np
import pytest
import torch

from genlab.metrics import neighbours as nb
from genlab.metrics.neighbours import data_copying, density_coverage, fid_infinity, nearest


def _gauss(n, d=8, seed=0, shift=0.0):
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def _reference_density_coverage(fake, real, k):
    """Brute-force transcription of Naeem et al.'s prdc code (full distance matrices in numpy)."""
    rr = np.sqrt(((real[:, None, :] - real[None, :, :]) ** 2).sum(-1))
    radii = np.sort(rr, axis=1)[:, k]  # column 0 is the point itself
    rf = np.sqrt(((real[:, None, :] - fake[None, :, :]) ** 2).sum(-1))
    inside = rf < radii[:, None]
    return inside.sum() / (k * len(fake)), inside.any(axis=1).mean()


# --------------------------------------------------------------------------------- density / coverage
def test_density_coverage_same_distribution():
    out = density_coverage(_gauss(2000, seed=1), _gauss(2000, seed=2), k=5)
    assert abs(out["density"] - 1.0) < 0.1
    assert out["coverage"] > 0.9
    assert (out["k"], out["n_fake"], out["n_real"]) == (5, 2000, 2000)


def test_density_coverage_far_away_fake_is_zero():
    out = density_coverage(_gauss(1000, seed=1, shift=50.0), _gauss(1000, seed=2), k=5)
    assert out["density"] == 0.0
    assert out["coverage"] == 0.0


def test_density_coverage_matches_bruteforce_and_subset_consistency():
    real = _gauss(400, d=6, seed=3)
    fake = real[np.random.default_rng(4).permutation(400)[:150]]
    out = density_coverage(fake, real, k=4)
    ref_density, ref_coverage = _reference_density_coverage(fake, real, 4)
    assert out["density"] == pytest.approx(ref_density, abs=1e-12)
    assert out["coverage"] == pytest.approx(ref_coverage, abs=1e-12)
    # each copied real point lies in its own ball: coverage >= share of real points copied
    assert out["coverage"] >= 150 / 400
    # and in the balls of real points whose k-NN it is: density well above the far-away case
    assert 0.5 < out["density"] < 1.5


def test_density_coverage_chunked_equals_unchunked(monkeypatch):
    fake, real = _gauss(300, seed=5, shift=0.3), _gauss(500, seed=6)
    whole = density_coverage(fake, real, k=3)
    monkeypatch.setattr(nb, "_CHUNK_BYTES", 8 * 500 * 7)  # 7 rows per block
    chunked = density_coverage(fake, real, k=3)
    assert chunked == pytest.approx(whole, abs=1e-12)
    ref_density, ref_coverage = _reference_density_coverage(fake, real, 3)
    assert chunked["density"] == pytest.approx(ref_density, abs=1e-12)
    assert chunked["coverage"] == pytest.approx(ref_coverage, abs=1e-12)


def test_density_coverage_rejects_bad_k():
    with pytest.raises(ValueError):
        density_coverage(_gauss(10), _gauss(5), k=5)


# --------------------------------------------------------------------------------------------- nearest
def test_nearest_hand_example(monkeypatch):
    reference = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0]])
    queries = np.array([[9.0, 1.0], [0.1, 4.0], [-1.0, -1.0], [10.0, 0.0]])
    monkeypatch.setattr(nb, "_CHUNK_BYTES", 8 * 3 * 1)  # one query per block
    idx, dist = nearest(queries, reference)
    assert idx.dtype == np.int64
    assert idx.tolist() == [1, 2, 0, 1]
    np.testing.assert_allclose(dist, [np.sqrt(2.0), np.sqrt(0.01 + 1.0), np.sqrt(2.0), 0.0], atol=1e-7)


def test_nearest_matches_bruteforce_and_accepts_tensors():
    q, r = _gauss(200, d=5, seed=7), _gauss(300, d=5, seed=8)
    full = np.sqrt(((q[:, None] - r[None]) ** 2).sum(-1))
    idx, dist = nearest(torch.from_numpy(q).float(), r)
    assert idx.tolist() == full.argmin(1).tolist()
    np.testing.assert_allclose(dist, full.min(1), rtol=1e-5)


# ---------------------------------------------------------------------------------------- data copying
def _copy_setup():
    train = _gauss(2000, seed=10)
    test = _gauss(1000, seed=11)
    return train, test


def test_data_copying_detects_exact_copies():
    train, test = _copy_setup()
    copies = train[np.random.default_rng(12).choice(len(train), 1000, replace=False)]
    out = data_copying(copies, train, test)
    assert out["copying"] is True
    assert out["c_t"] < -3
    assert out["cells"] == 20 and out["cells_used"] >= 10
    assert out["median_ratio"] < 1e-6
    assert (out["n_generated"], out["n_train"], out["n_test"]) == (1000, 2000, 1000)
    assert out["threshold"] == -3.0


def test_data_copying_heldout_samples_are_not_copying():
    train, test = _copy_setup()
    fresh = _gauss(1000, seed=13)
    out = data_copying(fresh, train, test)
    assert out["copying"] is False
    assert abs(out["c_t"]) < 3
    assert out["cells_used"] >= 10
    assert 0.8 < out["median_ratio"] < 1.25


def test_data_copying_partial_copies_more_negative_than_fresh():
    train, test = _copy_setup()
    rng = np.random.default_rng(14)
    half = np.concatenate([train[rng.choice(len(train), 500, replace=False)], _gauss(500, seed=15)])
    partial = data_copying(half, train, test)["c_t"]
    fresh = data_copying(_gauss(1000, seed=16), train, test)["c_t"]
    assert partial < fresh - 2


def test_data_copying_no_usable_cell_gives_nan():
    train, test = _copy_setup()
    out = data_copying(_gauss(5, seed=17), train, test, min_cell=20)
    assert out["cells_used"] == 0 and np.isnan(out["c_t"]) and out["copying"] is False


def test_mann_whitney_z_known_values():
    # all generated below all test: U = 0 -> z = -(mn/2)/sqrt(mn(m+n+1)/12)
    z = nb._mann_whitney_z(np.zeros(4), np.arange(1.0, 7.0))
    assert z == pytest.approx(-12 / np.sqrt(24 * 11 / 12))
    # identical samples: every pair ties -> U = mn/2 -> z = 0
    assert nb._mann_whitney_z(np.ones(3), np.ones(5)) == 0.0


def test_kmeans_separates_clusters():
    x = np.concatenate([_gauss(100, d=2, seed=18) * 0.1 + c for c in ([0, 0], [10, 0], [0, 10])])
    centres = nb._kmeans(torch.from_numpy(x), 3, seed=0).numpy()
    found = sorted(tuple(np.round(c).astype(int)) for c in centres)
    assert found == [(0, 0), (0, 10), (10, 0)]


# ---------------------------------------------------------------------------------------------- FID_inf
def test_fid_infinity_gaussians():
    fake = _gauss(2000, d=16, seed=20, shift=0.1)
    real = _gauss(4000, d=16, seed=21)
    out = fid_infinity(fake, real)
    assert len(out["sizes"]) == 15 and out["sizes"][0] == 1000 and out["sizes"][-1] == 2000
    assert len(out["fids"]) == 15
    assert out["slope"] > 0
    assert out["value"] < out["fids"][-1]
    assert out["n_real"] == 4000
    # sizes are evenly spaced in 1/N
    inv = 1.0 / np.asarray(out["sizes"], dtype=float)
    np.testing.assert_allclose(np.diff(inv), np.diff(inv)[0], rtol=0.02)
    # the full-size FID equals a direct FID of all fake features
    from genlab.metrics.fid import compute_fid_kid

    direct = compute_fid_kid(fake, real, kid_subset_size=2, kid_subsets=1)["fid"]
    assert out["fids"][-1] == pytest.approx(direct, rel=1e-9)


def test_fid_infinity_custom_sizes_and_validation():
    fake, real = _gauss(600, d=4, seed=22), _gauss(600, d=4, seed=23)
    out = fid_infinity(fake, real, sizes=[600, 100, 300])
    assert out["sizes"] == [100, 300, 600]
    with pytest.raises(ValueError):
        fid_infinity(fake, real, sizes=[100, 700])
    with pytest.raises(ValueError):
        fid_infinity(fake, real, sizes=[100])


# ------------------------------------------------------------------------------------------ determinism
def test_all_functions_are_deterministic():
    a, b, c = _gauss(500, seed=30), _gauss(700, seed=31), _gauss(400, seed=32)
    assert density_coverage(a, b) == density_coverage(a.copy(), b.copy())
    i1, d1 = nearest(a, b)
    i2, d2 = nearest(a.copy(), b.copy())
    assert np.array_equal(i1, i2) and np.array_equal(d1, d2)
    r1 = data_copying(a, b, c, cells=5, seed=3, min_cell=10)
    r2 = data_copying(a.copy(), b.copy(), c.copy(), cells=5, seed=3, min_cell=10)
    assert r1["cells_used"] == 5 and not np.isnan(r1["c_t"])
    assert repr(r1) == repr(r2)  # repr: exact float digits, and NaN compares equal to NaN
    f1 = fid_infinity(b, a, seed=5)
    f2 = fid_infinity(b.copy(), a.copy(), seed=5)
    assert repr(f1) == repr(f2)
    assert fid_infinity(b, a, seed=6)["fids"][:-1] != f1["fids"][:-1]  # the seed matters


# ------------------------------------------------------------------- statistics stored beside real features
def _fresh_caches(monkeypatch):
    from genlab.metrics import fid

    monkeypatch.setattr(nb, "_RADII", {})
    monkeypatch.setattr(fid, "_REAL_KERNEL_SUMS", {})


def test_stored_real_statistics_give_the_computed_numbers_to_the_last_bit(tmp_path, monkeypatch):
    from genlab.metrics.features import load_real_features, real_statistics, save_features
    from genlab.metrics.fid import kernel_distance

    real, fake = _gauss(300, seed=5).astype(np.float32), _gauss(120, seed=6, shift=0.3).astype(np.float32)
    _fresh_caches(monkeypatch)
    computed = (kernel_distance(fake, real), density_coverage(fake, real, k=5), nb.precision_recall(fake, real))
    path = tmp_path / "real.h5"
    save_features(path, real, {"N": len(real)}, real_statistics(real))
    _fresh_caches(monkeypatch)
    loaded, _ = load_real_features(path)
    assert len(nb._RADII) == 1  # handed over, not computed
    assert (kernel_distance(fake, loaded), density_coverage(fake, loaded, k=5),
            nb.precision_recall(fake, loaded)) == computed


def test_the_metrics_read_the_stored_statistics(tmp_path, monkeypatch):
    """Wrong numbers stored are what the metrics give: they are read, not computed again."""
    from genlab.metrics.features import load_real_features, real_statistics, save_features
    from genlab.metrics.fid import kernel_distance

    real, fake = _gauss(300, seed=5).astype(np.float32), _gauss(120, seed=6).astype(np.float32)
    _fresh_caches(monkeypatch)
    right = kernel_distance(fake, real)["mean"], density_coverage(fake, real, k=5)["coverage"]
    stats = real_statistics(real)
    stats["kid_kernel_sum"] += 1e6
    stats["knn_radii"] = np.zeros_like(stats["knn_radii"])  # no ball holds a sample: coverage 0
    save_features(tmp_path / "real.h5", real, {"N": len(real)}, stats)
    _fresh_caches(monkeypatch)
    loaded, _ = load_real_features(tmp_path / "real.h5")
    wrong = kernel_distance(fake, loaded)["mean"], density_coverage(fake, loaded, k=5)["coverage"]
    assert wrong[0] == pytest.approx(right[0] + 1e6 / (300 * 299)) and right[1] > 0.5 and wrong[1] == 0.0
