"""Data-parallel training (`train.nproc: 2`): two gloo processes under torchrun against one process.

The same global batch of 16 (8 rows per process), the same seed: the two-process model must match the
one-process model to within TOLERANCE (sums taken in another order: the gradient all-reduce and the
global BatchNorm statistics), the curves to 1e-3; one MLflow run holds the curves, logged by rank 0 only; and a two-process
run killed after its first epoch resumes to the very bytes of one that was not interrupted.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from evalfiles import NUM_CLASSES, packed_with_classifier
from genlab.config import parse_params
from genlab.models import build_model
from projects import dvc, git, logged, start_logged

pytestmark = pytest.mark.slow  # whole scripts and processes: left out of `make test-fast`

REPO = Path(__file__).resolve().parents[1]
#: Largest difference allowed between a weight tensor trained by two processes and by one, as a share of
#: how far training moved it (L2 norms). Measured after these 12 steps: at most 0.023 (G's first layer,
#: whose output feeds BatchNorm: a scale-invariant loss, near-zero gradients, and Adam's normalization
#: amplifies their rounding), against 0.58 when each process draws its own noise instead of its rows of
#: the global batch's.
TOLERANCE = 0.1
EPOCHS, STEPS = 4, 3


def params(nproc: int) -> dict:
    return {"seed": 5, "data": {"train_limit": 160},
            "train": {"device": "cpu", "precision": "fp32", "log_every": 5, "grid_size": 4, "nproc": nproc,
                      "best_samples": 32, "best_real": 64},
            "models": {"m": {"type": "dcgan", "epochs": EPOCHS, "batch_size": 16, "width": 8, "latent_dim": 8,
                             "steps_per_epoch": STEPS}}}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A small packed labelled dataset and its classifier (the best-checkpoint score needs one)."""
    packed, classifier = packed_with_classifier(tmp_path_factory.mktemp("inputs"), n_train=160, n_test=32)
    return {"packed": packed, "classifier": classifier}


STAGE = {"train": {"foreach": ["m"], "do": {
    "cmd": "python pipeline/train.py ${item} data/packed.h5 data/classifier.pt models/${item} plots/${item}",
    "deps": ["data/packed.h5", "data/classifier.pt"], "params": ["seed", "data", "train", "models.${item}"],
    "outs": [{"models/${item}": {"persist": True}}], "plots": [{"plots/${item}": {"cache": False, "persist": True}}]}}}
RUN = Path("models") / "m" / "seed-5"  # the one training seed: params' `seed` (no `seeds` list)


def project(root: Path, nproc: int, inputs: dict[str, Path]) -> Path:
    """A DVC project whose train@m stage is run by hand (the stage records its lineage from dvc.yaml)."""
    (root / "data").mkdir(parents=True)
    shutil.copy(inputs["packed"], root / "data" / "packed.h5")
    shutil.copy(inputs["classifier"], root / "data" / "classifier.pt")
    (root / "params.yaml").write_text(yaml.safe_dump(params(nproc)))
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": STAGE}, sort_keys=False))
    git(root, "init", "-q")
    dvc(root, "init", "-q")
    return root


def start(root: Path) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
           "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "pipeline" / "train.py"), "m", "data/packed.h5", "data/classifier.pt",
           "models/m", "plots/m"]
    return start_logged(cmd, root.parent / f"{root.name}-train.log", cwd=root, env=env)


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (torchrun starts its workers in sessions of their own)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        children = []
    return [pid, *(p for child in children for p in process_tree(int(child)))]


def train(root: Path) -> str:
    proc = start(root)
    proc.wait(timeout=600)
    out = logged(proc)
    assert proc.returncode == 0, out[-4000:]
    return out


def weights(root: Path, name: str = "model.pt") -> dict[str, torch.Tensor]:
    return torch.load(root / RUN / name, weights_only=True)["state_dict"]


def initial_weights() -> dict[str, torch.Tensor]:
    """The weights training starts from (the stage seeds torch, then builds the model)."""
    config = parse_params(params(1))
    torch.manual_seed(config.seed)
    return build_model(config.model("m"), (1, 28, 28), NUM_CLASSES).state_dict()


def runs(root: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fashion-mnist")
    return client, client.search_runs([experiment.experiment_id], filter_string="tags.`genlab.seed` = '5'")


@pytest.fixture(scope="module")
def one_and_two(inputs, tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("nproc")
    one, two = project(base / "one", 1, inputs), project(base / "two", 2, inputs)
    train(one)
    out = train(two)
    assert "torch.distributed" not in out or "Traceback" not in out, out[-4000:]
    return one, two


def test_two_processes_train_what_one_process_trains_on_the_same_global_batch(one_and_two):
    one, two = one_and_two
    single, parallel = weights(one), weights(two)
    assert single.keys() == parallel.keys()
    assert any("running_mean" in key for key in single)  # BatchNorm layers, their statistics synchronized
    initial = initial_weights()
    checked = 0
    for key, value in single.items():
        if not value.is_floating_point():
            assert torch.equal(value, parallel[key]), key  # num_batches_tracked: every step counted once
            continue
        moved = (value - initial[key]).norm()  # how far training took this tensor
        assert moved > 0, key
        assert (value - parallel[key]).norm() <= TOLERANCE * moved, key
        checked += 1
    assert checked > 10
    # and not trivially: the parallel weights did train (they are not the initial ones)
    start_of_training = torch.load(one / RUN / "checkpoint.pt", weights_only=False)
    assert start_of_training["epoch"] == EPOCHS
    curves = [np.loadtxt(root / "plots" / "m" / "seed-5.csv", delimiter=",", skiprows=1) for root in (one, two)]
    assert curves[0].shape == (EPOCHS * STEPS, 5)
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-3, atol=1e-4)  # rank means = the global batch's


def test_one_mlflow_run_holds_the_curves_logged_by_rank_zero(one_and_two):
    _, two = one_and_two
    client, found = runs(two)
    assert len(found) == 1
    run = found[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["train.nproc"] == "2"
    history = client.get_metric_history(run.info.run_id, "loss_d")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS * STEPS + 1))  # each step once
    assert len(client.get_metric_history(run.info.run_id, "select_classifier_fid")) == EPOCHS
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert artifacts == {"model/model.pt", "model/best.pt"}


def test_a_two_process_run_killed_after_an_epoch_resumes_to_the_same_bytes(one_and_two, inputs, tmp_path):
    _, two = one_and_two
    root = project(tmp_path / "resumed", 2, inputs)
    checkpoint = root / RUN / "checkpoint.pt"
    proc = start(root)
    deadline = time.monotonic() + 300
    while not checkpoint.exists():
        assert proc.poll() is None, f"the stage ended before its first checkpoint:\n{logged(proc)[-3000:]}"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    for pid in process_tree(proc.pid):  # the stage, torchrun and both workers, as a lost machine would
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    epoch = torch.load(checkpoint, weights_only=False)["epoch"]
    if epoch >= EPOCHS:
        pytest.skip("training finished before it could be interrupted")
    out = train(root)
    assert f"resuming from epoch {epoch} of {EPOCHS}" in out, out[-3000:]
    for name in ("model.pt", "best.pt"):
        assert (root / RUN / name).read_bytes() == (two / RUN / name).read_bytes(), name
    client, found = runs(root)
    assert len(found) == 1 and found[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(found[0].info.run_id, "loss_d")]
    assert sorted(steps) == list(range(1, EPOCHS * STEPS + 1))
