"""The MLflow Model Registry: one registered model per (dataset or task, params entry), one version per seed
run and checkpoint kind, and aliases users load by: `last` and `best` (the first training seed's last and best
checkpoints) and `champion` (set by the report stage on the entry that ranks first in its section).

Registering is idempotent: a run's checkpoint that has a version keeps it, so re-running a stage adds none."""
from __future__ import annotations

import re
from typing import Mapping

from genlab.tracking.mlflow_run import client  # noqa: F401  (the store's MlflowClient, for callers)

MODEL_PATH = "mlflow_model"  # a seed run's MLflow Models: mlflow_model/last, mlflow_model/best
ALIASES = ("last", "best", "champion")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def registered_name(section: str, entry: str) -> str:
    """`<dataset or task>.<entry>`, e.g. fashion-mnist.dcgan: load it as models:/fashion-mnist.dcgan@champion."""
    return _NAME_CHARS.sub("-", f"{section}.{entry}")


def artifact_path(checkpoint: str) -> str:
    return f"{MODEL_PATH}/{checkpoint}"


def existing_version(cl, name: str, run_id: str, checkpoint: str) -> str | None:
    """The version registered from `run_id`'s `checkpoint` model, if there is one."""
    if not _registered(cl, name):
        return None
    for version in cl.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        if version.tags.get("genlab.checkpoint") == checkpoint:
            return version.version
    return None


def register_version(cl, name: str, run_id: str, checkpoint: str, tags: Mapping[str, str],
                     description: str = "") -> str:
    """A version of `name` whose source is the run's logged MLflow Model of `checkpoint` (logged already)."""
    found = existing_version(cl, name, run_id, checkpoint)
    if found is not None:
        return found
    if not _registered(cl, name):
        cl.create_registered_model(name, description=description)
    version = cl.create_model_version(name, source=f"runs:/{run_id}/{artifact_path(checkpoint)}", run_id=run_id,
                                      tags={"genlab.checkpoint": checkpoint, **tags})
    return version.version


def set_alias(cl, name: str, alias: str, version: str) -> None:
    cl.set_registered_model_alias(name, alias, str(version))


def move_alias(cl, section: str, alias: str, name: str, version: str) -> list[str]:
    """Give `alias` to `name`'s `version` and take it off every other registered model of `section` (each
    entry is its own registered model, so an alias naming a section's one model must be moved by hand).
    Returns the models it was taken from."""
    set_alias(cl, name, alias, version)
    prefix = registered_name(section, "")
    taken, token = [], None
    while True:
        page = cl.search_registered_models(filter_string=f"name LIKE '{prefix}%'", page_token=token)
        for model in page:
            if model.name != name and model.name.startswith(prefix) and alias in (model.aliases or {}):
                cl.delete_registered_model_alias(model.name, alias)
                taken.append(model.name)
        token = page.token
        if not token:
            return taken


def _registered(cl, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        cl.get_registered_model(name)
    except MlflowException:
        return False
    return True
