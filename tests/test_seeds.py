"""Every training seed of a model in one process (genlab.training.seeds): one trained model and one child
MLflow run a seed under one parent; a seed added later is the only one trained; a dropped seed is removed;
a seed whose model file is lost is retrained on its own; changed params start a new parent."""
from __future__ import annotations

import hashlib

import pytest
from mlflow.tracking import MlflowClient

from genlab.config import parse_params
from genlab.training.seeds import train_seeds
from miniatures import packed_bars

pytestmark = pytest.mark.usefixtures("store")  # a fresh MLflow store per test, cwd in tmp_path (conftest)

GAN = {"type": "gan", "epochs": 2, "batch_size": 16, "steps_per_epoch": 3, "latent_dim": 8}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return packed_bars(tmp_path_factory.mktemp("raw"), tmp_path_factory.mktemp("packed") / "fashion-mnist.h5",
                       (64, 16), noise=40, rows=(4, 7), cols=(4, 24), value=255)


@pytest.fixture
def client(store):
    return MlflowClient(store)


def params(seeds, **model):
    return parse_params({"seeds": list(seeds), "train": {"device": "cpu", "log_every": 2, "grid_size": 4,
                                                         "best_metric": "none"},
                         "models": {"m": {**GAN, **model}}})


def train(tmp_path, packed, seeds, **model):
    return train_seeds(params(seeds, **model), "m", packed, tmp_path / "models" / "m", tmp_path / "plots" / "m")


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def children(client, parent_id):
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")
    return {int(r.data.tags["genlab.seed"]): r for r in runs}


def test_each_seed_is_a_model_and_a_child_run_of_one_parent(tmp_path, packed, client):
    results = train(tmp_path, packed, [0, 1])
    assert [r.seed for r in results] == [0, 1] and not any(r.kept for r in results)
    models = tmp_path / "models" / "m"
    assert md5(models / "seed-0" / "model.pt") != md5(models / "seed-1" / "model.pt")  # two seeds, two models
    parent = TrainingRunFile(models).run_id
    runs = children(client, parent)
    assert set(runs) == {0, 1} and {r.info.run_id for r in runs.values()} == {r.run_id for r in results}
    assert runs[1].info.run_name == "m seed 1" and runs[1].data.params["seed"] == "1"
    assert client.get_run(parent).data.tags["genlab.role"] == "parent"
    assert (tmp_path / "plots" / "m" / "seed-1-epochs.csv").read_text().splitlines()[0].startswith("epoch,step")


def test_an_added_seed_is_the_only_one_trained_and_a_dropped_one_is_removed(tmp_path, packed, client):
    train(tmp_path, packed, [0, 1])
    models = tmp_path / "models" / "m"
    before = {s: md5(models / f"seed-{s}" / "model.pt") for s in (0, 1)}
    parent = TrainingRunFile(models).run_id
    results = train(tmp_path, packed, [0, 1, 2])
    assert [(r.seed, r.kept) for r in results] == [(0, True), (1, True), (2, False)]
    assert {s: md5(models / f"seed-{s}" / "model.pt") for s in (0, 1)} == before
    assert TrainingRunFile(models).run_id == parent and set(children(client, parent)) == {0, 1, 2}
    results = train(tmp_path, packed, [0, 2])
    assert all(r.kept for r in results) and not (models / "seed-1").exists()
    assert not (tmp_path / "plots" / "m" / "seed-1.csv").exists()


def test_a_seed_whose_model_file_is_lost_is_retrained_alone_to_the_same_bytes(tmp_path, packed):
    train(tmp_path, packed, [0, 1])
    models = tmp_path / "models" / "m"
    expected = md5(models / "seed-1" / "model.pt")
    (models / "seed-1" / "model.pt").unlink()  # (resuming a seed's epoch checkpoint: tests/test_checkpoints.py)
    checkpoint = models / "seed-1" / "checkpoint.pt"
    import torch

    blob = torch.load(checkpoint, weights_only=False)
    assert blob["epoch"] == 2
    results = train(tmp_path, packed, [0, 1])
    assert [(r.seed, r.kept) for r in results] == [(0, True), (1, False)]
    assert md5(models / "seed-1" / "model.pt") == expected  # retrained from scratch: the same bytes


def test_changed_params_retrain_every_seed_under_a_new_parent(tmp_path, packed):
    train(tmp_path, packed, [0, 1])
    models = tmp_path / "models" / "m"
    parent, before = TrainingRunFile(models).run_id, md5(models / "seed-0" / "model.pt")
    results = train(tmp_path, packed, [0, 1], lr=1e-3)
    assert not any(r.kept for r in results) and TrainingRunFile(models).run_id != parent
    assert md5(models / "seed-0" / "model.pt") != before


class TrainingRunFile:
    def __init__(self, directory):
        import json

        self.run_id = json.loads((directory / "mlflow_run.json").read_text())["run_id"]
