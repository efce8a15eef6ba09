"""The model file: a trained model as data (its spec, shapes and weights), `model.pt` for the last epoch and
`best.pt` for the best one. Training writes it; sampling, evaluation, serving and the audit read it
without importing the training code. Read with weights_only (genlab.torch_io): no pickled code runs."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from genlab.errors import GenlabError
from genlab.models import GenerativeModel, build_model
from genlab.models.base import ModelSpec
from genlab.torch_io import load_weights, save_torch_atomic

MODEL_FILE = "model.pt"
BEST_FILE = "best.pt"
MODEL_KEYS = ("spec", "image_shape", "num_classes", "state_dict")
CHECKPOINT_FILES = {"last": MODEL_FILE, "best": BEST_FILE}


class NoBestCheckpoint(GenlabError):
    """sample.checkpoint is best, and training kept none."""


def load_model(model_dir: Path, device: torch.device | str = "cpu", checkpoint: str = "last") -> GenerativeModel:
    """Rebuild a trained model from `models/<name>/model.pt` (spec, shapes and weights), or from
    `best.pt` (checkpoint="best"), the best epoch's model in the same format.

    Read as data only (genlab.torch_io): a damaged or foreign file is one line saying to retrain."""
    model_dir = Path(model_dir)
    path = model_dir / CHECKPOINT_FILES[checkpoint]
    if checkpoint == "best" and not path.exists() and (model_dir / MODEL_FILE).exists():
        raise NoBestCheckpoint(f"{path}: models.{model_dir.name} has no best checkpoint (its MLflow run's tag "
                               f"genlab.best says why, e.g. a dataset without the labels its classifier needs); "
                               f"set sample.checkpoint: last")
    return read_model_file(path, device, f"re-run `dvc repro train@{model_dir.name}`")


def read_model_file(path: Path, device: torch.device | str = "cpu", remedy: str = "retrain it") -> GenerativeModel:
    """The model a model file holds, in eval mode on `device`; `remedy`: what the one-line refusal of a damaged
    or foreign file tells the user to do."""
    blob = load_weights(Path(path), remedy, MODEL_KEYS, map_location=device)
    model = build_model(ModelSpec(**blob["spec"]), blob["image_shape"], blob["num_classes"], blob.get("input_shape"))
    model.load_state_dict(blob["state_dict"])
    model.train_precision = blob.get("precision", "fp32")  # what it was trained in (labelled downstream)
    return model.to(device).eval()


def save_model_file(model: GenerativeModel, precision: str, path: Path) -> None:
    """A model file (spec, shapes, weights): what load_model reads, for the last and the best checkpoint."""
    spec = model.spec
    shapes = {"input_shape": model.input_shape} if model.input_shape is not None else {}  # image-to-image only
    save_torch_atomic({"spec": {**dataclasses.asdict(spec), "hparams": dict(spec.hparams)},
                       "image_shape": tuple(model.image_shape), "num_classes": model.num_classes, **shapes,
                       "precision": precision, "state_dict": model.state_dict()}, path)
