"""FID and KID from precomputed features, computed by torch-fidelity's own functions."""
from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric


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
