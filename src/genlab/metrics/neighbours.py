"""Nearest-neighbour metrics on feature sets (N, D): density/coverage, data-copying C_T and FID_inf.

* :func:`density_coverage` -- Naeem, Oh, Uh, Choi & Yoo, "Reliable Fidelity and Diversity Metrics for
  Generative Models", ICML 2020.
* :func:`data_copying` -- Meehan, Chaudhuri & Dasgupta, "A Non-Parametric Test to Detect Data-Copying in
  Generative Models", AISTATS 2020 (the C_T statistic).
* :func:`fid_infinity` -- Chong & Forsyth, "Effectively Unbiased FID and Inception Score and where to find
  them", CVPR 2020.
* :func:`nearest` -- exact Euclidean 1-NN of queries in a reference set.

All distances are exact (no approximate search): they are computed in float64 with ``torch.cdist`` on CPU
(direct differences, about 2.5 ms per query row against 60k references of 128 dims on 2 cores),
one block of query rows at a time so that a distance block holds at most ``_CHUNK_BYTES`` (64 MiB; with
cdist's temporaries the peak stays well below 1 GB even for 10k x 60k points of 128 dims). Every random
choice comes from ``np.random.default_rng(seed)``, so equal inputs give identical floats.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genlab.io import content_key

# Bytes of one float64 distance block (rows x reference points); kept small so the peak memory of
# cdist's matrix-product path (the block, its squared version and the row/column norms) stays < 1 GB.
_CHUNK_BYTES = 64 * 2**20

# Meehan et al. call C_T << 0 evidence of data copying; we flag it below this z-like value.
COPYING_THRESHOLD = -3.0


# ----------------------------------------------------------------------------------------------- helpers
def _as_f64(x, name: str = "features") -> torch.Tensor:
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, D), got shape {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains non-finite values")
    return torch.from_numpy(arr)


def _check_dims(*tensors: torch.Tensor) -> None:
    dims = {t.shape[1] for t in tensors}
    if len(dims) != 1:
        raise ValueError(f"feature dims differ: {sorted(dims)}")


def _rows_per_chunk(n_cols: int) -> int:
    return max(1, _CHUNK_BYTES // (8 * max(1, n_cols)))


def _cdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Direct differences, not the |a|^2 + |b|^2 - 2ab matrix-product shortcut, for small sets: each distance
    # is then exact to rounding, symmetric and exactly 0 for a copied point, so ball-membership ties come out
    # as in a brute-force computation. Above MM_PAIRS pairs (the classifier-space sets: thousands of samples
    # against the 10k test split) the matrix product, ~3x faster here; in float64 its rounding (~1e-12
    # relative) only matters for exact ties, and it is as deterministic on CPU.
    mode = "use_mm_for_euclid_dist" if len(a) * len(b) > MM_PAIRS else "donot_use_mm_for_euclid_dist"
    return torch.cdist(a, b, compute_mode=mode)


MM_PAIRS = 4_000_000


#: Every k-th-neighbour radius up to this k comes from one pass over a set (precision/recall's k = 3 and
#: density/coverage's k = 5 share it): the k smallest distances of a row are the same floats whatever k.
RADII_K = 5

_RADII: dict[str, torch.Tensor] = {}  # content digest -> (N, max k) sorted radii: a real set's, reused across seeds


def _knn_radii(real: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each point to its k-th nearest *other* point of the same set (self excluded).

    Kept per process by the set's content (every seed of a model is scored against the same real set), for
    every k up to ``max(k, RADII_K)`` at once."""
    key = content_key(real)
    if key not in _RADII or _RADII[key].shape[1] < k:
        _RADII[key] = _compute_knn_radii(real, min(max(k, RADII_K), len(real) - 1), every=True)
    return _RADII[key][:, k - 1]


def real_radii(points) -> np.ndarray:
    """A real set's (N, min(RADII_K, N - 1)) sorted distances of each point to its nearest other points: what
    _knn_radii keeps, stored beside the features by the stage that writes them."""
    t = _as_f64(points)
    return _compute_knn_radii(t, min(RADII_K, len(t) - 1), every=True).numpy()


def remember_radii(points, radii: np.ndarray) -> None:
    """Hand this process a real set's stored radii (real_radii), so no metric computes them again."""
    _RADII[content_key(_as_f64(points))] = torch.from_numpy(np.ascontiguousarray(radii, dtype=np.float64))


def _compute_knn_radii(points: torch.Tensor, k: int, every: bool = False) -> torch.Tensor:
    """Each point's distance to its k-th nearest other point; with ``every``, the (N, k) sorted distances to
    its 1st..k-th."""
    n = len(points)
    step = _rows_per_chunk(n)
    out = torch.empty((n, k), dtype=torch.float64)
    for start in range(0, n, step):
        stop = min(start + step, n)
        d = _cdist(points[start:stop], points)
        rows = torch.arange(stop - start)
        d[rows, rows + start] = float("inf")  # exclude the point itself, not its duplicates
        out[start:stop] = torch.topk(d, k, dim=1, largest=False, sorted=True).values
    return out if every else out[:, k - 1]


# (fake, real) digests -> their distance matrix, the latest pairs within _FAKE_REAL_BYTES: density/coverage
# reads what precision/recall computed for the same two sets (2000 x 10000 float64 is 160 MB)
_FAKE_REAL: dict[str, torch.Tensor] = {}
_FAKE_REAL_BYTES = 256 * 2**20


def _fake_real_blocks(fake: torch.Tensor, real: torch.Tensor):
    """(start, distance block of fake rows x every real point), block by block, the same blocks whichever
    metric asks; a pair's whole matrix is kept while the kept ones fit in ``_FAKE_REAL_BYTES``."""
    key = content_key(fake) + content_key(real)
    step = _rows_per_chunk(len(real))
    if key in _FAKE_REAL:
        whole = _FAKE_REAL[key]
        for start in range(0, len(fake), step):
            yield start, whole[start:start + step]
        return
    keep = 8 * len(fake) * len(real) <= _FAKE_REAL_BYTES
    blocks = []
    for start in range(0, len(fake), step):
        d = _cdist(fake[start:start + step], real)
        if keep:
            blocks.append(d)
        yield start, d
    if keep:
        _FAKE_REAL[key] = torch.cat(blocks)
        while sum(m.numel() * 8 for m in _FAKE_REAL.values()) > _FAKE_REAL_BYTES:
            del _FAKE_REAL[next(iter(_FAKE_REAL))]  # the oldest pair


# ------------------------------------------------------------------------------------ density / coverage
def density_coverage(fake, real, k: int = 5) -> dict:
    """Density and coverage of Naeem et al. (ICML 2020), exact k-NN.

    With real points X_1..X_N, fake points Y_1..Y_M and r_i the distance from X_i to its k-th nearest
    other real point (the ball B(X_i, r_i) is open, as in the authors' ``prdc`` code)::

        density  = 1/(k M) * sum_j sum_i 1[Y_j in B(X_i, r_i)]
        coverage = 1/N     * sum_i 1[exists j: Y_j in B(X_i, r_i)]

    Density is about 1 (not bounded by 1) when the fake and real distributions agree; coverage lies in
    [0, 1]. Returns {"density", "coverage", "k", "n_fake", "n_real"}.
    """
    fake_t, real_t = _as_f64(fake, "fake"), _as_f64(real, "real")
    _check_dims(fake_t, real_t)
    k = int(k)
    if not 1 <= k < len(real_t):
        raise ValueError(f"k must be in [1, n_real - 1], got k={k} with n_real={len(real_t)}")

    radii = _knn_radii(real_t, k)
    covered = torch.zeros(len(real_t), dtype=torch.bool)
    inside_total = 0
    for _, d in _fake_real_blocks(fake_t, real_t):
        inside = d < radii[None, :]  # (fake block, real)
        inside_total += int(inside.sum())
        covered |= inside.any(dim=0)

    return {
        "density": float(inside_total / (k * len(fake_t))),
        "coverage": float(covered.double().mean()),
        "k": k,
        "n_fake": int(len(fake_t)),
        "n_real": int(len(real_t)),
    }


def precision_recall(fake, real, k: int = 3) -> dict:
    """Improved precision and recall of Kynkaanniemi et al. (NeurIPS 2019), exact k-NN, with the balls
    closed as in torch-fidelity's implementation:

        precision = share of fake points inside some real point's ball B(X_i, NND_k(X_i))
        recall    = share of real points inside some fake point's ball B(Y_j, NND_k(Y_j))

    The real set's radii are kept per process, so scoring many seeds against one real set computes them
    once. Returns {"precision", "recall", "neighborhood", "n_fake", "n_real"}."""
    fake_t, real_t = _as_f64(fake, "fake"), _as_f64(real, "real")
    _check_dims(fake_t, real_t)
    k = int(k)
    if not 1 <= k < min(len(real_t), len(fake_t)):
        raise ValueError(f"k must be in [1, min(n_fake, n_real) - 1], got k={k}")
    real_radii, fake_radii = _knn_radii(real_t, k), _compute_knn_radii(fake_t, k)
    precise = torch.zeros(len(fake_t), dtype=torch.bool)
    recalled = torch.zeros(len(real_t), dtype=torch.bool)
    for start, d in _fake_real_blocks(fake_t, real_t):  # (fake block, real)
        precise[start:start + len(d)] = (d <= real_radii[None, :]).any(dim=1)
        recalled |= (d <= fake_radii[start:start + len(d), None]).any(dim=0)
    return {"precision": float(precise.double().mean()), "recall": float(recalled.double().mean()),
            "neighborhood": k, "n_fake": int(len(fake_t)), "n_real": int(len(real_t))}


# ---------------------------------------------------------------------------------------------- nearest
def _nearest_t(queries: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.empty(len(queries), dtype=torch.int64)
    dist = torch.empty(len(queries), dtype=torch.float64)
    step = _rows_per_chunk(len(reference))
    for start in range(0, len(queries), step):
        d, i = _cdist(queries[start:start + step], reference).min(dim=1)
        idx[start:start + len(i)] = i
        dist[start:start + len(d)] = d
    return idx, dist


def nearest(queries, reference) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the index (int64) of its nearest reference row and the Euclidean distance
    (float64) to it; exact, computed block by block."""
    q, r = _as_f64(queries, "queries"), _as_f64(reference, "reference")
    _check_dims(q, r)
    idx, dist = _nearest_t(q, r)
    return idx.numpy(), dist.numpy()


# ------------------------------------------------------------------------------------------ data copying
def _kmeans(x: torch.Tensor, k: int, seed: int, max_iter: int = 100) -> torch.Tensor:
    """Seeded k-means: k-means++ initialisation (Arthur & Vassilvitskii 2007) drawn from
    np.random.default_rng(seed), then Lloyd iterations until the assignment stops changing or
    ``max_iter`` is reached. An empty cell keeps its previous centre. Returns the (k, D) centres."""
    rng = np.random.default_rng(seed)
    n = len(x)
    centres = torch.empty((k, x.shape[1]), dtype=torch.float64)
    centres[0] = x[int(rng.integers(n))]
    d2 = _nearest_t(x, centres[:1])[1].numpy() ** 2
    for c in range(1, k):
        total = d2.sum()
        if total > 0:
            cum = np.cumsum(d2)
            pick = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
            pick = min(pick, n - 1)
        else:  # all remaining points coincide with chosen centres
            pick = int(rng.integers(n))
        centres[c] = x[pick]
        d2 = np.minimum(d2, _nearest_t(x, centres[c:c + 1])[1].numpy() ** 2)

    labels = None
    for _ in range(max_iter):  # assignments by the matrix-product distance: a tie between centres is immaterial
        new = torch.cdist(x, centres, compute_mode="use_mm_for_euclid_dist").argmin(dim=1)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None].to(x.dtype)
    return centres


def _mann_whitney_z(gen: np.ndarray, test: np.ndarray) -> float:
    """z-score of the Mann-Whitney U statistic of ``gen`` against ``test`` (normal approximation without
    tie correction, as in Meehan et al.'s code): U = #{(g, t): g > t} + 0.5 #{g == t}; negative when the
    generated distances tend to be smaller."""
    m, n = len(gen), len(test)
    t_sorted = np.sort(test)
    below = np.searchsorted(t_sorted, gen, side="left")
    ties = np.searchsorted(t_sorted, gen, side="right") - below
    u = float(below.sum() + 0.5 * ties.sum())
    mean = m * n / 2.0
    var = m * n * (m + n + 1) / 12.0
    return (u - mean) / np.sqrt(var)


def default_cells(n_train: int, n_test: int) -> int:
    """Default number of k-means cells: min(20, n_test // 50, n_train // 50), at least 1, so that a cell
    holds about 50 test points on average (Meehan et al. pick k by hand; this is our rule)."""
    return int(max(1, min(20, n_test // 50, n_train // 50)))


@dataclass(frozen=True)
class CopyingReference:
    """The generated-independent half of data_copying: the training points, the k-means cells fitted on
    them, and the test points' cells and distances to their nearest training point. Computed once per
    (train, test) pair and shared by every model and seed scored against it."""

    train: torch.Tensor
    centres: torch.Tensor
    test_cell: np.ndarray
    test_d: np.ndarray

    @property
    def cells(self) -> int:
        return len(self.centres)


def copying_reference(train, test, *, cells: int | None = None, seed: int = 0, max_iter: int = 100) -> CopyingReference:
    train_t, test_t = _as_f64(train, "train"), _as_f64(test, "test")
    _check_dims(train_t, test_t)
    k = default_cells(len(train_t), len(test_t)) if cells is None else int(cells)
    if not 1 <= k <= len(train_t):
        raise ValueError(f"cells must be in [1, n_train], got {k}")
    centres = _kmeans(train_t, k, seed, max_iter=max_iter)
    return CopyingReference(train_t, centres, _nearest_t(test_t, centres)[0].numpy(),
                            _nearest_t(test_t, train_t)[1].numpy())


def copying_statistics(reference: CopyingReference, seed: int) -> dict[str, np.ndarray]:
    """A reference's fitted parts (the k-means centres for `seed`, the test points' cells and nearest-training
    distances), to store beside the training features: every model's evaluate stage reads them."""
    return {"copying_seed": np.int64(seed), "copying_centres": reference.centres.numpy(),
            "copying_test_cell": reference.test_cell, "copying_test_d": reference.test_d}


def stored_copying_reference(train, test_points: int, statistics: dict, seed: int) -> CopyingReference | None:
    """The CopyingReference that copying_reference(train, test, seed=seed) would fit, from what
    copying_statistics stored; None when nothing is stored for this seed, this many test points and the
    default number of cells."""
    if "copying_centres" not in statistics or int(statistics["copying_seed"]) != seed:
        return None
    train_t = _as_f64(train, "train")
    centres, test_cell = statistics["copying_centres"], statistics["copying_test_cell"]
    if len(test_cell) != test_points or len(centres) != default_cells(len(train_t), test_points):
        return None
    return CopyingReference(train_t, torch.from_numpy(centres), test_cell, statistics["copying_test_d"])


def data_copying(
    generated,
    train=None,
    test=None,
    *,
    reference: CopyingReference | None = None,
    cells: int | None = None,
    seed: int = 0,
    min_cell: int = 20,
    min_test: int = 10,
    max_iter: int = 100,
) -> dict:
    """The data-copying statistic C_T of Meehan, Chaudhuri & Dasgupta (AISTATS 2020).

    The feature space is partitioned into ``cells`` cells by seeded k-means on the *training* points
    (default :func:`default_cells`). In each cell pi, the distances of its test points and of its generated
    points to their nearest training point are compared by the Mann-Whitney U test; Z_U(pi) < 0 means that
    generated points lie closer to the training set than held-out data do. Then::

        C_T = sum_{pi in Pi_tau} P_n(pi) Z_U(pi) / sum_{pi in Pi_tau} P_n(pi)

    with P_n(pi) the share of test points in pi. Pi_tau keeps the cells with at least ``min_cell`` generated
    points -- Meehan's tau, here tau = min_cell / n_generated (default 20 points, enough for the normal
    approximation of U) -- and at least ``min_test`` test points (default 10). The normalisation by the
    kept test share follows the paper; it is the plain P_n-weighted sum when every cell is kept. Meehan et
    al. read C_T << 0 as data copying (C_T >> 0 as under-fitting); ``copying`` is C_T < -3.

    Returns {"c_t", "cells", "cells_used", "n_generated", "n_train", "n_test", "median_ratio", "copying",
    "threshold", "tau", "cell_z"}; ``median_ratio`` = median(generated->train NN distance) /
    median(test->train NN distance), ``cell_z`` the per-cell Z_U (NaN for cells not kept). C_T is NaN
    (and ``copying`` False) when no cell is kept.
    """
    ref = reference or copying_reference(train, test, cells=cells, seed=seed, max_iter=max_iter)
    gen_t = _as_f64(generated, "generated")
    _check_dims(gen_t, ref.train)
    n_gen, n_train, n_test, k = len(gen_t), len(ref.train), len(ref.test_d), ref.cells
    centres, test_cell, test_d = ref.centres, ref.test_cell, ref.test_d
    gen_cell = _nearest_t(gen_t, centres)[0].numpy()
    gen_d = _nearest_t(gen_t, ref.train)[1].numpy()

    gen_counts = np.bincount(gen_cell, minlength=k)
    test_counts = np.bincount(test_cell, minlength=k)
    cell_z = np.full(k, np.nan)
    weights = test_counts / n_test
    used = (gen_counts >= min_cell) & (test_counts >= min_test)
    for c in np.flatnonzero(used):
        cell_z[c] = _mann_whitney_z(gen_d[gen_cell == c], test_d[test_cell == c])
    if used.any():
        c_t = float(np.dot(weights[used], cell_z[used]) / weights[used].sum())
    else:
        c_t = float("nan")

    med_test = float(np.median(test_d))
    median_ratio = float(np.median(gen_d) / med_test) if med_test > 0 else float("inf")
    return {
        "c_t": c_t,
        "cells": k,
        "cells_used": int(used.sum()),
        "n_generated": n_gen,
        "n_train": n_train,
        "n_test": n_test,
        "median_ratio": median_ratio,
        "copying": bool(c_t < COPYING_THRESHOLD),  # False for NaN
        "threshold": COPYING_THRESHOLD,
        "tau": float(min_cell / n_gen),
        "cell_z": [float(z) for z in cell_z],
    }


# ------------------------------------------------------------------------------------------------ FID_inf
def default_fid_sizes(n_fake: int, points: int = 15) -> list[int]:
    """``points`` sample sizes evenly spaced in 1/N between min(5000, n_fake // 2) and n_fake."""
    lo = min(5000, n_fake // 2)
    if lo < 2:
        raise ValueError(f"need at least 4 fake samples for FID_inf, got {n_fake}")
    inv = np.linspace(1.0 / lo, 1.0 / n_fake, points)
    return sorted({int(round(1.0 / v)) for v in inv})


def fid_infinity(fake, real, *, sizes=None, seed: int = 0) -> dict:
    """FID_inf of Chong & Forsyth (CVPR 2020): FID is biased with a leading term linear in 1/N, so FID_N is
    evaluated at several sample sizes N, FID_N = a + b/N is fitted by least squares and the intercept a is
    the extrapolated, effectively unbiased value.

    Default sizes: :func:`default_fid_sizes` (15 sizes evenly spaced in 1/N from min(5000, n_fake // 2) to
    n_fake). For each size a subset of the fake features is drawn without replacement (a permutation from
    one np.random.default_rng(seed)); the real set is always used whole. FID uses torch-fidelity's
    ``fid_features_to_statistics`` / ``fid_statistics_to_metric`` in float64 (as genlab.metrics.fid).

    Returns {"value": a, "slope": b, "sizes": [...], "fids": [...], "n_real"}.
    """
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    fake_t, real_t = _as_f64(fake, "fake"), _as_f64(real, "real")
    _check_dims(fake_t, real_t)
    n_fake = len(fake_t)
    if sizes is None:
        sizes = default_fid_sizes(n_fake)
    else:
        sizes = sorted({int(s) for s in sizes})
        if sizes[0] < 2 or sizes[-1] > n_fake:
            raise ValueError(f"sizes must lie in [2, {n_fake}], got {sizes}")
    if len(sizes) < 2:
        raise ValueError("need at least two distinct sample sizes to fit FID = a + b/N")

    rng = np.random.default_rng(seed)
    real_stats = fid_features_to_statistics(real_t)
    fids = []
    for n in sizes:
        idx = np.sort(rng.permutation(n_fake)[:n])
        stats = fid_features_to_statistics(fake_t[torch.from_numpy(idx)])
        fids.append(float(fid_statistics_to_metric(stats, real_stats, verbose=False)[KEY_METRIC_FID]))

    design = np.stack([np.ones(len(sizes)), 1.0 / np.asarray(sizes, dtype=np.float64)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, np.asarray(fids), rcond=None)
    return {
        "value": float(a),
        "slope": float(b),
        "sizes": [int(s) for s in sizes],
        "fids": fids,
        "n_real": int(len(real_t)),
    }
