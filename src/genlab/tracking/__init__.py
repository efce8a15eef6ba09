"""Experiment tracking (MLflow): store location, runs, batched metric logging."""
from genlab.tracking.mlflow_run import RUN_FILE, TrainingRun, client, provenance_tags, repo_root, tracking_uri

__all__ = ["RUN_FILE", "TrainingRun", "client", "provenance_tags", "repo_root", "tracking_uri"]
