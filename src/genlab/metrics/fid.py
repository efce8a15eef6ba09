"""FID and KID from precomputed features, computed by torch-fidelity's own functions."""
from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

from genlab.io import content_key


def _as_float64_tensor(feats: np.ndarray | torch.Tensor) -> torch.Tensor:
    # float64 for both sets: torch-fidelity asserts equal dtypes and takes the feature mean in the input dtype.
    if torch.is_tensor(feats):
        feats = feats.detach().cpu().numpy()
    t = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float64))
    if t.dim() != 2:
        raise ValueError(f"features must be (N, D), got {tuple(t.shape)}")
    return t


def compute_fid_kid(
    fake_feats: np.ndarray | torch.Tensor,
    real_feats: np.ndarray | torch.Tensor,
    *,
    kid_subset_size: int = 1000,
    kid_subsets: int = 100,
    seed: int = 0,
) -> dict:
    """{"fid", "kid_mean", "kid_std"} between two feature sets (N, D).

    KID uses subsets of min(kid_subset_size, N_fake, N_real) samples drawn by a
    np.random.RandomState(seed) created inside torch-fidelity, so equal inputs give equal results.
    """
    fake, real = _as_float64_tensor(fake_feats), _as_float64_tensor(real_feats)
    if fake.shape[1] != real.shape[1]:
        raise ValueError(f"feature dims differ: {fake.shape[1]} vs {real.shape[1]}")

    fid = fid_statistics_to_metric(
        fid_features_to_statistics(fake), fid_features_to_statistics(real), verbose=False
    )[KEY_METRIC_FID]
    kid = kid_features_to_metric(
        fake,
        real,
        kid_subsets=kid_subsets,
        kid_subset_size=min(kid_subset_size, len(fake), len(real)),
        rng_seed=seed,
        verbose=False,
    )
    return {
        "fid": float(fid),
        "kid_mean": float(kid[KEY_METRIC_KID_MEAN]),
        "kid_std": float(kid[KEY_METRIC_KID_STD]),
    }


def compute_precision_recall(fake_feats, real_feats, *, neighborhood: int = 3) -> dict:
    """Improved precision/recall (Kynkäänniemi et al., 2019) with torch-fidelity's implementation:
    precision = share of samples inside the k-NN balls of real data (fidelity), recall = share of
    real data inside the samples' balls (coverage)."""
    from torch_fidelity.metric_prc import KEY_METRIC_F_SCORE, KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    fake, real = _as_float64_tensor(fake_feats), _as_float64_tensor(real_feats)
    k = min(neighborhood, len(fake) - 1, len(real) - 1)
    out = prc_features_to_metric(fake, real, prc_neighborhood=k, prc_batch_size=10000, save_cpu_ram=False,
                                 verbose=False)
    return {"precision": float(out[KEY_METRIC_PRECISION]), "recall": float(out[KEY_METRIC_RECALL]),
            "f_score": float(out[KEY_METRIC_F_SCORE]), "neighborhood": int(k)}


def compute_fid(fake_feats, real_feats) -> float:
    """FID alone (torch-fidelity's statistics and metric), without KID's subsets."""
    fake, real = _as_float64_tensor(fake_feats), _as_float64_tensor(real_feats)
    return float(fid_statistics_to_metric(fid_features_to_statistics(fake), fid_features_to_statistics(real),
                                          verbose=False)[KEY_METRIC_FID])


_KERNEL_BLOCK = 1024
_REAL_KERNEL_SUMS: dict[str, float] = {}  # a real set's off-diagonal kernel sum, by content: one per process


def real_kernel_sum(real_feats) -> float:
    """KID's real-side term: the kernel summed over every pair of a real set's features (diagonal left out),
    stored beside the features by the stage that writes them (genlab.metrics.features.real_statistics)."""
    real = _as_float64_tensor(real_feats)
    return _kernel_sum(real, real, real.shape[1], same=True)


def remember_kernel_sum(real_feats, total: float) -> None:
    """Hand this process a real set's stored kernel sum, so kernel_distance does not compute it again."""
    _REAL_KERNEL_SUMS[content_key(_as_float64_tensor(real_feats))] = float(total)


def _kernel_sum(x: torch.Tensor, y: torch.Tensor, dim: int, same: bool) -> float:
    """Sum of the cubic polynomial kernel (x.y / dim + 1)^3 over all pairs (the diagonal left out when x is
    y), in float64, block by block."""
    total = 0.0
    for start in range(0, len(x), _KERNEL_BLOCK):
        block = (x[start:start + _KERNEL_BLOCK] @ y.T / dim + 1) ** 3
        total += float(block.sum())
        if same:
            total -= float(torch.diagonal(block, offset=start).sum())
    return total


def kernel_distance(fake_feats, real_feats, *, subsets: int = 10, subset_size: int = 1000, seed: int = 0) -> dict:
    """KID (Binkowski et al. 2018) as the unbiased estimate of MMD^2 with the cubic polynomial kernel over
    ALL fake against ALL real features: the same estimator as torch-fidelity's mean over random subsets
    (unbiased at any N), with less variance and, with the real set's kernel sum kept per process, a
    fraction of the cost for many seeds against one real set. `std` is torch-fidelity's std over `subsets`
    random subsets of min(subset_size, N_fake, N_real): the estimator's noise at that subset size."""
    fake, real = _as_float64_tensor(fake_feats), _as_float64_tensor(real_feats)
    if fake.shape[1] != real.shape[1]:
        raise ValueError(f"feature dims differ: {fake.shape[1]} vs {real.shape[1]}")
    m, n, dim = len(fake), len(real), fake.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"KID needs at least 2 features a side, got {m} fake and {n} real")
    key = content_key(real)
    if key not in _REAL_KERNEL_SUMS:
        _REAL_KERNEL_SUMS[key] = real_kernel_sum(real)
    mmd2 = (_kernel_sum(fake, fake, dim, same=True) / (m * (m - 1)) + _REAL_KERNEL_SUMS[key] / (n * (n - 1))
            - 2 * _kernel_sum(fake, real, dim, same=False) / (m * n))
    size = min(subset_size, m, n)
    noise = kid_features_to_metric(fake, real, kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False)
    return {"mean": float(mmd2), "std": float(noise[KEY_METRIC_KID_STD]), "subsets": subsets, "subset_size": size,
            "estimator": "unbiased MMD^2 over all pairs; std over random subsets (torch-fidelity)"}
