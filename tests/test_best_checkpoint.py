"""The best checkpoint beside the last: scored every epoch, chosen by the lowest score, recorded in
MLflow, used by the sample stage when params say so, and without any effect on the training itself."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from evalfiles import packed_with_classifier
from genlab.config import ParamsError, parse_params
from genlab.classifier_net import load_classifier
from genlab.training.data import open_train_data
from genlab.models.files import NoBestCheckpoint, load_model
from genlab.training.loop import train_model
from genlab.training.selection import CheckpointSelector

EPOCHS = 4


def params(**train) -> dict:
    return {"seed": 2, "train": {"device": "cpu", "precision": "fp32", "log_every": 5, "grid_size": 4,
                                 "best_samples": 48, "best_real": 64, **train},
            "models": {"m": {"type": "dcgan", "epochs": EPOCHS, "batch_size": 16, "width": 8, "latent_dim": 8,
                             "steps_per_epoch": 4, "lr": 0.002}}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mlflow_store_at) -> dict[str, Path]:
    """One model trained with selection and one without, in one MLflow store."""
    root = tmp_path_factory.mktemp("best")
    packed, classifier = packed_with_classifier(root, n_train=96, n_test=24, epochs=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_store_at(root))
        mp.chdir(root)
        for name, train in (("selected", {}), ("plain", {"best_metric": "none"})):
            train_model(parse_params(params(**train)), "m", packed, root / name, root / f"{name}.csv", classifier)
    return {"root": root, "packed": packed, "classifier": classifier}


def run_of(trained, name: str):
    client = MlflowClient(tracking_uri=f"sqlite:///{trained['root'] / 'mlflow.db'}")
    run_id = json.loads((trained["root"] / name / "mlflow_run.json").read_text())["run_id"]
    return client, client.get_run(run_id)


def test_choosing_the_best_checkpoint_does_not_change_the_training(trained):
    root = trained["root"]
    assert (root / "selected" / "model.pt").read_bytes() == (root / "plain" / "model.pt").read_bytes()
    assert (root / "selected.csv").read_bytes() == (root / "plain.csv").read_bytes()
    assert not (root / "plain" / "best.pt").exists()


def test_the_best_is_the_epoch_with_the_lowest_score_and_mlflow_records_both(trained):
    client, run = run_of(trained, "selected")
    scores = client.get_metric_history(run.info.run_id, "select_classifier_fid")
    assert [m.step for m in sorted(scores, key=lambda m: m.step)] == [4 * e for e in range(1, EPOCHS + 1)]
    best = min(scores, key=lambda m: m.value)
    assert len({m.value for m in scores}) == EPOCHS  # the epochs are told apart
    assert run.data.tags["genlab.best_epoch"] == str(best.step // 4)
    assert run.data.metrics["best_select_classifier_fid"] == pytest.approx(best.value, rel=1e-12)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert artifacts == {"model/model.pt", "model/best.pt"}
    _, plain = run_of(trained, "plain")
    assert plain.data.tags["genlab.best"].startswith("none: train.best_metric is none")


def test_best_pt_is_the_model_that_scored_best(trained):
    """Re-scoring best.pt and model.pt from their files gives back the recorded best and last scores."""
    client, run = run_of(trained, "selected")
    history = sorted(client.get_metric_history(run.info.run_id, "select_classifier_fid"), key=lambda m: m.step)
    classifier, _ = load_classifier(trained["classifier"])
    data = open_train_data(trained["packed"], device=torch.device("cpu"), memory_budget_bytes=1 << 30,
                           shuffle_buffer=1 << 16)
    model_dir = trained["root"] / "selected"
    last, best = load_model(model_dir), load_model(model_dir, checkpoint="best")
    score = lambda model: CheckpointSelector(classifier, data, 48, 64, 2, model, torch.device("cpu")).score(model)  # noqa: E731
    assert score(best) == pytest.approx(min(m.value for m in history), rel=1e-9)
    assert score(last) == pytest.approx(history[-1].value, rel=1e-9)


def test_sampling_from_a_best_checkpoint_that_was_not_kept_says_what_to_do(trained, tmp_path):
    shutil.copytree(trained["root"] / "plain", tmp_path / "m")
    with pytest.raises(NoBestCheckpoint, match="set sample.checkpoint: last"):
        load_model(tmp_path / "m", checkpoint="best")


def test_params_refuse_a_best_checkpoint_that_is_never_chosen():
    raw = {**params(best_metric="none"), "sample": {"checkpoint": "best"}}
    with pytest.raises(ParamsError, match="sample.checkpoint: got 'best' but train.best_metric is 'none'"):
        parse_params(raw)


def test_params_refuse_a_batch_the_processes_cannot_share():
    raw = params(nproc=3)
    with pytest.raises(ParamsError, match=r"models.m.batch_size: got 16, .*train.nproc: 3"):
        parse_params(raw)
