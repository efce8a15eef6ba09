"""Experiment tracking (MLflow): store location, runs, batched metric logging, store health."""
from genlab.tracking.mlflow_run import (RUN_FILE, TrainingRun, client, provenance_tags, repo_root, require_store,
                                        tracking_uri)

__all__ = ["RUN_FILE", "TrainingRun", "client", "provenance_tags", "repo_root", "require_store", "tracking_uri"]
