"""Weights files read as data only: round trips, refused payloads, damaged files in one line."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from genlab.cli import run_stage
from genlab.config import parse_params
from genlab.data.hdf5 import pack_dataset
from genlab.data.idx import encode_idx
from genlab.data.sources import default_preprocessing
from genlab.metrics.classifier import load_classifier, save_no_classifier, train_classifier
from genlab.torch_io import UnsafeWeightsFile
from genlab.models.files import load_model
from genlab.training.loop import train_model

pytestmark = pytest.mark.usefixtures("store")  # a fresh MLflow store per test, cwd in tmp_path (conftest)

PARAMS = {"seed": 3, "train": {"device": "cpu", "precision": "fp32", "log_every": 2, "grid_size": 4},
          "models": {"m": {"type": "dcgan", "epochs": 2, "batch_size": 16, "width": 8, "latent_dim": 8,
                           "steps_per_epoch": 2}}}
TRAIN_REMEDY = "re-run `dvc repro train@m`"
EVALUATOR_REMEDY = "re-run `dvc repro evaluator@fashion-mnist`"


class Payload:
    """Pickles as a call to os.system: loading it unrestricted would create `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, mlflow_store_at) -> dict[str, Path]:
    """A tiny packed dataset, one trained model (model.pt, checkpoint.pt) and its classifier."""
    root = tmp_path_factory.mktemp("outputs")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 64), ("t10k", 16)):
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(encode_idx(rng.integers(0, 255, (n, 28, 28), np.uint8)))
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(encode_idx(np.arange(n, dtype=np.uint8) % 10))
    packed = root / "fashion-mnist.h5"
    pack_dataset("fashion-mnist", root, packed, default_preprocessing("fashion-mnist"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_store_at(root))
        mp.chdir(root)
        train(packed, root / "reference")
    classifier = root / "data" / "evaluator" / "fashion-mnist.pt"
    train_classifier(packed, classifier, epochs=1, batch_size=32, lr=1e-3, seed=0, device=torch.device("cpu"))
    save_no_classifier(root / "none.pt", "no labels")
    model_dir = root / "reference" / "models" / "m"
    return {"packed": packed, "model": model_dir / "model.pt", "checkpoint": model_dir / "checkpoint.pt",
            "classifier": classifier, "none": root / "none.pt"}


def train(packed: Path, out: Path) -> None:
    train_model(parse_params(PARAMS), "m", packed, out / "models" / "m", out / "plots" / "m.csv")


def one_line_error(capsys, load: Callable[[], object]) -> str:
    """What a stage prints when `load` fails: exactly one line on stderr, exit status 1."""
    with pytest.raises(SystemExit) as exit_info:
        run_stage(lambda argv: load())
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def placed(outputs: dict[str, Path], kind: str, tmp_path: Path) -> tuple[Path, Callable[[], object], str]:
    """A copy of `kind`'s file under tmp_path, the loader that reads it, and what its error must say."""
    if kind == "model":
        path = tmp_path / "models" / "m" / "model.pt"
        load, remedy = (lambda: load_model(path.parent)), TRAIN_REMEDY
    else:
        path = tmp_path / "data" / "evaluator" / "fashion-mnist.pt"
        load, remedy = (lambda: load_classifier(path)), EVALUATOR_REMEDY
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(outputs[kind], path)
    return path, load, remedy


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes({"half": data[: len(data) // 2], "empty": b"",
                      "garbage": np.random.default_rng(1).bytes(len(data))}[how])


def test_every_saved_file_loads_as_weights_only_without_extra_globals(outputs):
    allowed = {getattr(g, "__module__", "").split(".")[0] for g in torch.serialization.get_safe_globals()}
    assert allowed <= {"builtins", "torch", "traceback"}  # torch's own registrations; genlab adds none
    for kind in ("model", "checkpoint", "classifier", "none"):
        assert isinstance(torch.load(outputs[kind], weights_only=True), dict), kind
    ckpt = torch.load(outputs["checkpoint"], weights_only=True)
    assert ckpt["torch_rng"].dtype == torch.uint8 and isinstance(ckpt["history"][0]["step"], int)
    model = load_model(outputs["model"].parent)
    assert model.generate(model.sample_latent(2)).shape == (2, 1, 28, 28)
    classifier, meta = load_classifier(outputs["classifier"])
    assert classifier is not None and meta["class_names"][0] == "T-shirt/top"
    assert load_classifier(outputs["none"]) == (None, {"reason": "no labels"})


@pytest.mark.parametrize("kind", ["model", "classifier"])
def test_a_pickled_payload_is_refused_and_never_runs(outputs, tmp_path, capsys, kind):
    path, load, remedy = placed(outputs, kind, tmp_path)
    live = tmp_path / "live"
    torch.save(Payload(live), tmp_path / "probe.pt")
    torch.load(tmp_path / "probe.pt", weights_only=False)
    assert live.exists()  # the payload is real: an unrestricted load runs it
    marker = tmp_path / "pwned"
    torch.save({"state_dict": Payload(marker), "reason": None}, path)
    err = one_line_error(capsys, load)
    assert str(path) in err and "not a genlab weights file" in err and "will not be loaded" in err
    assert remedy in err and "posix.system" in err
    assert not marker.exists()


@pytest.mark.parametrize("how", ["half", "empty", "garbage"])
@pytest.mark.parametrize("kind", ["model", "classifier"])
def test_a_damaged_file_is_one_line_naming_it_and_what_to_rerun(outputs, tmp_path, capsys, kind, how):
    path, load, remedy = placed(outputs, kind, tmp_path)
    damage(path, how)
    err = one_line_error(capsys, load)
    assert str(path) in err and remedy in err
    assert ("empty file" in err) == (how == "empty")


def test_a_file_of_another_shape_is_not_loaded(outputs, tmp_path, capsys):
    path, load, remedy = placed(outputs, "model", tmp_path)
    torch.save({"weights": torch.zeros(2)}, path)
    err = one_line_error(capsys, load)
    assert "not a genlab weights file (no spec, image_shape, num_classes, state_dict)" in err and remedy in err


@pytest.mark.parametrize("how", ["half", "empty", "garbage"])
def test_a_damaged_checkpoint_is_reported_and_training_starts_from_scratch(outputs, tmp_path, capsys, how):
    ckpt = tmp_path / "run" / "models" / "m" / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    shutil.copy(outputs["checkpoint"], ckpt)
    damage(ckpt, how)
    train(outputs["packed"], tmp_path / "run")
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(ckpt) in warnings[0] and "training models.m from scratch" in warnings[0]
    for name in ("model.pt", "checkpoint.pt"):  # the same bytes as a run that never saw the damage
        assert (ckpt.parent / name).read_bytes() == (outputs["model"].parent / name).read_bytes(), name


def test_a_checkpoint_carrying_code_stops_training_and_is_kept(outputs, tmp_path, capsys):
    ckpt = tmp_path / "run" / "models" / "m" / "checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"
    torch.save({"fingerprint": Payload(marker)}, ckpt)
    before = ckpt.read_bytes()
    err = one_line_error(capsys, lambda: train(outputs["packed"], tmp_path / "run"))
    assert str(ckpt) in err and "will not be loaded" in err and "delete it to train models.m from scratch" in err
    assert not marker.exists() and ckpt.read_bytes() == before
    assert not (ckpt.parent / "model.pt").exists()
    with pytest.raises(UnsafeWeightsFile):
        train(outputs["packed"], tmp_path / "run")
