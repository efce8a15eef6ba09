"""The Inception Score (Salimans et al. 2016) from torch-fidelity's full Inception weights, which the offline
FID weights (genlab.metrics.inception) cannot give: they have no logits layer."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from genlab.metrics.inception import eval_settings

TORCH_FIDELITY_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


def inception_weights_path(cfg: Mapping[str, Any]) -> Path:
    """eval.inception_weights, or where torch-fidelity's own download would have cached the file."""
    if cfg.get("inception_weights"):
        return Path(cfg["inception_weights"])
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / TORCH_FIDELITY_WEIGHTS


def inception_score(samples: np.ndarray, cfg: Mapping[str, Any], seed: int) -> dict:
    """IS from torch-fidelity's `inception-v3-compat` logits when its full weights are on disk;
    otherwise null with the reason (the offline fid-helper weights have no logits layer)."""
    path = inception_weights_path(cfg)
    if not path.is_file():
        return {"value": None, "reason": (
            f"Inception Score needs torch-fidelity's full Inception weights ({TORCH_FIDELITY_WEIGHTS}); "
            f"not found at {path}. Download it once from torch-fidelity's releases and set "
            f"eval.inception_weights to its path (the offline FID weights have no logits layer).")}
    import torch
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.utils import create_feature_extractor

    device = eval_settings(cfg)[0]
    try:
        extractor = create_feature_extractor("inception-v3-compat", ["logits_unbiased"], cuda=device.startswith("cuda"),
                                             feature_extractor_weights_path=str(path), verbose=False)
    except Exception as err:  # a corrupt or wrong file must not crash the evaluation of everything else
        return {"value": None, "reason": f"could not load {path}: {err}"}
    images = torch.from_numpy(np.ascontiguousarray(samples))
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    with torch.no_grad():
        logits = torch.cat([extractor(chunk.to(device))[0].cpu() for chunk in images.split(cfg["batch_size"])])
    splits = min(10, len(logits))
    isc = isc_features_to_metric(logits, splits=splits, rng_seed=seed)
    return {"value": isc["inception_score_mean"], "std": isc["inception_score_std"], "splits": splits,
            "n": int(len(logits)), "extractor": "inception-v3-compat", "weights": path.name}
