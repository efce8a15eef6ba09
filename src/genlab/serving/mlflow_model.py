"""Every trained model as an MLflow Model in the Model Registry (the report stage).

Each seed run's last and best checkpoints become MLflow Models logged to that run (`mlflow_model/last`,
`mlflow_model/best`): the pyfunc flavour through models-from-code (genlab.serving.pyfunc), genlab's
weights-only model file as the one artifact, a signature and an input example, and metadata naming the
dataset's hash, the seed's metrics with their protocol and the run's lineage. Each is a version of the
registered model `<dataset or task>.<entry>` (genlab.tracking.registry); `last` and `best` point at the first
seed's, `champion` is the report stage's."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from genlab.io import read_record
from genlab.layout import seed_path
from genlab.models.files import CHECKPOINT_FILES, read_model_file
from genlab.tracking import registry
from genlab.tracking.mlflow_run import RUN_FILE

EXAMPLE_N = 4  # images the input example asks for


def input_example(model):
    """What a request looks like: a DataFrame row (n, seed, label) or, for image-to-image, input images."""
    import pandas as pd

    if model.input_shape is not None:  # image-to-image: it takes images
        return np.zeros((2, *model.input_shape), dtype=np.uint8)
    return pd.DataFrame({"n": [EXAMPLE_N], "seed": [0], "label": [0 if model.conditional else -1]})


def signature(model):
    """What the model takes and gives: (n, seed, label) rows or input images, and uint8 (N, C, H, W) images."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    images = Schema([TensorSpec(np.dtype(np.uint8), (-1, *model.image_shape), "images")])
    if model.input_shape is not None:  # image-to-image: it takes images
        return ModelSignature(Schema([TensorSpec(np.dtype(np.uint8), (-1, *model.input_shape), "inputs")]), images,
                              ParamSchema([ParamSpec("seed", "long", 0)]))
    return ModelSignature(Schema([ColSpec("long", "n"), ColSpec("long", "seed"), ColSpec("long", "label")]), images)


def requirements() -> list[str]:
    """The packages loading the model imports, pinned as installed here."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("genlab", "torch", "mlflow", "numpy", "pandas", "h5py")]


def save_mlflow_model(model_file: Path, out: Path, metadata: Mapping[str, Any], batch_size: int) -> None:
    """An MLflow Model directory at `out` for the model file (model.pt or best.pt); `batch_size`: its noise
    batches (the evaluate stage's sample.batch_size, so it draws the evaluate stage's images for a seed)."""
    import mlflow

    from genlab.serving import pyfunc

    model = read_model_file(model_file, "cpu", f"re-run the train stage that wrote {model_file}")
    mlflow.pyfunc.save_model(str(out), python_model=pyfunc.__file__, artifacts={"model_file": str(model_file)},
                             signature=signature(model), input_example=input_example(model), metadata=dict(metadata),
                             pip_requirements=requirements(), model_config={"batch_size": int(batch_size)})


def seed_metadata(run, entry: str, seed: int, checkpoint: str, metrics_dir: Path) -> dict[str, Any]:
    tags = run.data.tags
    record = seed_path(metrics_dir, seed, ".json")
    numbers = json.loads(record.read_text()) if record.is_file() else {}
    protocol = read_record(record) if record.is_file() else {}
    return {"genlab_model": entry, "genlab_type": tags.get("genlab.model_type"), "seed": seed,
            "checkpoint": checkpoint, "run_id": run.info.run_id, "data_hash": tags.get("data.hash"),
            "dataset": run.data.params.get("model.dataset"), "metrics": numbers,
            "metric_protocols": {k: v for k, v in protocol.items() if isinstance(v, dict)},
            "lineage": {"git_commit": tags.get("git.commit"), "stage": tags.get("genlab.stage"),
                        "lineage_artifact": "lineage/train@" + entry + ".json"}}


def register_entry(entry: str, section: str, model_dir: Path, metrics_dir: Path, seeds,
                   batch_size: int, cl=None) -> dict[str, Any]:
    """Log and register every seed's last and best checkpoint of models.<entry>; set `last` and `best` on the
    first seed's. A checkpoint already registered from its run is kept (no second version). `cl`: the
    MlflowClient to use (one made here by default)."""
    name = registry.registered_name(section, entry)
    cl = cl or registry.client()
    versions: dict[str, dict[str, str]] = {}
    for seed in seeds:
        run_dir = seed_path(model_dir, seed)
        run_id = json.loads((run_dir / RUN_FILE).read_text())["run_id"]
        run = cl.get_run(run_id)
        for checkpoint, file_name in CHECKPOINT_FILES.items():
            if not (run_dir / file_name).is_file():
                continue  # training kept no best checkpoint (its tag genlab.best says why)
            version = registry.existing_version(cl, name, run_id, checkpoint)
            if version is None:
                with tempfile.TemporaryDirectory(prefix="genlab-mlflow-model-") as tmp:
                    out = Path(tmp) / "model"
                    save_mlflow_model(run_dir / file_name, out,
                                      seed_metadata(run, entry, seed, checkpoint, metrics_dir), batch_size)
                    cl.log_artifacts(run_id, str(out), registry.artifact_path(checkpoint))
                version = registry.register_version(
                    cl, name, run_id, checkpoint, {"genlab.seed": str(seed), "genlab.model": entry},
                    description=f"models.{entry} of params.yaml, trained on {section}")
            versions.setdefault(str(seed), {})[checkpoint] = version
    first = versions.get(str(seeds[0]), {})
    for alias, version in first.items():
        registry.set_alias(cl, name, alias, version)
    return {"registered_model": name, "versions": versions, "aliases": dict(first)}
