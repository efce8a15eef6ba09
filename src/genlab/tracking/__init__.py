"""Experiment tracking (MLflow): store location and health, runs, batched metric logging.

Names are loaded on first use, so `from genlab.tracking import require_store` checks the store
without importing MLflow (about 2 s)."""
from __future__ import annotations

import importlib

_WHERE = {"RUN_FILE": "mlflow_run", "GRID_KEY": "mlflow_run", "FINAL_GRID_KEY": "mlflow_run", "TrainingRun": "mlflow_run", "client": "mlflow_run",
          "provenance_tags": "mlflow_run", "log_lineage": "mlflow_run", "repo_root": "store", "require_store": "store",
          "tracking_uri": "store", "tracking_enabled": "store", "experiment_page": "store"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'genlab.tracking' has no attribute {name!r}")
    return getattr(importlib.import_module(f"genlab.tracking.{_WHERE[name]}"), name)
