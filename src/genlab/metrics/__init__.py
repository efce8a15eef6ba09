"""Sample-quality metrics: offline FID-Inception features, feature files, FID and KID, and the metric
registry (genlab.metrics.registry) that every evaluation runs through.

Names are loaded on first use, so importing a submodule (the registry, when params are validated in
every stage) does not import torch-fidelity and torchvision (about 1.5 s). genlab's own metrics
(genlab.metrics.builtin: numpy and the registry; each computation imports its code when it runs) are
registered here, before any submodule is used."""
from __future__ import annotations

import importlib

from genlab.metrics import builtin  # noqa: F401  (registers genlab's metrics)

_WHERE = {"extract_features": "features", "feature_protocol": "features", "load_features": "features",
          "save_features": "features", "compute_fid_kid": "fid", "INCEPTION_EXTRACTOR": "inception",
          "InceptionV3TFFidHelper": "inception", "weights_identity": "inception", "weights_path": "inception",
          "check_metrics": "registry", "is_valid_metric": "registry", "list_valid_metrics": "registry",
          "register_metric": "registry"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'genlab.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(f"genlab.metrics.{_WHERE[name]}"), name)
