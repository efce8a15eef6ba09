"""The training loop on a tiny packed dataset: byte-identical reruns, resume, divergence."""
from __future__ import annotations

import json

import pytest
import torch

from genlab.config import parse_params
from genlab.data.hdf5 import pack_dataset
from genlab.models.files import load_model
from genlab.training import loop
from genlab.training.loop import TrainingDiverged, train_model
from miniatures import packed_bars

pytestmark = pytest.mark.usefixtures("store")  # a fresh MLflow store per test, cwd in tmp_path (conftest)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """128 train / 32 test images of Fashion-MNIST's shape: class k is a bar at row 2k."""
    return packed_bars(tmp_path_factory.mktemp("raw"), tmp_path_factory.mktemp("packed") / "fashion-mnist.h5",
                       (128, 32), noise=40, rows=(4, 7), cols=(4, 24), value=255)


def params_for(model: dict, **train):
    return parse_params({
        "seed": 3,
        "train": {"device": "cpu", "precision": "fp32", "log_every": 3, "grid_size": 10, **train},
        "models": {"m": model},
    })


def run(params, packed, out):
    return train_model(params, "m", packed, out / "models" / "m", out / "plots" / "m.csv")


DCGAN = {"type": "dcgan", "epochs": 2, "batch_size": 16, "width": 8, "latent_dim": 16}


def test_same_params_give_byte_identical_checkpoints(packed, tmp_path):
    params = params_for(DCGAN)
    run(params, packed, tmp_path / "a")
    run(params, packed, tmp_path / "b")
    for name in ("model.pt", "checkpoint.pt"):
        a = (tmp_path / "a" / "models" / "m" / name).read_bytes()
        b = (tmp_path / "b" / "models" / "m" / name).read_bytes()
        assert a == b, name
    assert (tmp_path / "a" / "plots" / "m.csv").read_bytes() == (tmp_path / "b" / "plots" / "m.csv").read_bytes()
    # and a different seed gives different weights
    other = parse_params({"seed": 4, "train": {"device": "cpu", "precision": "fp32"}, "models": {"m": DCGAN}})
    run(other, packed, tmp_path / "c")
    assert (tmp_path / "c" / "models" / "m" / "model.pt").read_bytes() != a


def interrupt_after_first_epoch(params, packed, out, monkeypatch):
    """Train until the first epoch's checkpoint is written, then stop as Ctrl-C would."""
    real_save = loop.save_torch_atomic
    calls = {"n": 0}

    def save_then_stop(obj, path):
        real_save(obj, path)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_torch_atomic", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run(params, packed, out)
    monkeypatch.setattr(loop, "save_torch_atomic", real_save)


def test_interrupted_run_resumes_to_the_same_bytes_in_the_same_mlflow_run(packed, tmp_path, monkeypatch, store):
    from mlflow.tracking import MlflowClient

    params = params_for(DCGAN)
    run(params, packed, tmp_path / "full")

    interrupt_after_first_epoch(params, packed, tmp_path / "resumed", monkeypatch)
    out = tmp_path / "resumed" / "models" / "m"
    assert not (out / "model.pt").exists()
    run_id = json.loads((out / "mlflow_run.json").read_text())["run_id"]
    client = MlflowClient(store)
    assert client.get_run(run_id).info.status == "FAILED"

    result = run(params, packed, tmp_path / "resumed")
    assert result.run_id == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    assert (out / "model.pt").read_bytes() == (tmp_path / "full" / "models" / "m" / "model.pt").read_bytes()
    steps = [m.step for m in client.get_metric_history(run_id, "loss_d")]
    assert sorted(steps) == list(range(1, result.steps + 1))


def test_resumed_between_generator_updates_logs_the_loss_g_an_uninterrupted_run_logs(packed, tmp_path, monkeypatch,
                                                                                    store):
    """WGAN updates G every 5th step; 8 steps an epoch, so the run resumes at step 9, between updates,
    where an uninterrupted run logs G's loss from step 6 (not zero: the value travels in the checkpoint)."""
    from mlflow.tracking import MlflowClient

    params = params_for({"type": "wgan", "epochs": 2, "batch_size": 16, "width": 8, "latent_dim": 16}, log_every=1)
    full = run(params, packed, tmp_path / "full")
    interrupt_after_first_epoch(params, packed, tmp_path / "resumed", monkeypatch)
    resumed = run(params, packed, tmp_path / "resumed")
    client = MlflowClient(store)
    full, resumed = ({m.step: m.value for m in client.get_metric_history(r.run_id, "loss_g")} for r in (full, resumed))
    assert full[9] == full[6] != 0.0  # logged steps count from 1: G updated at steps 1, 6, 11, ...
    assert resumed == full
    assert (tmp_path / "resumed" / "plots" / "m.csv").read_bytes() == (tmp_path / "full" / "plots" / "m.csv").read_bytes()


def test_a_checkpoint_is_read_onto_the_cpu_so_its_rng_states_restore_on_any_device(packed, tmp_path):
    run(params_for(DCGAN), packed, tmp_path)
    ckpt = loop.read_checkpoint(tmp_path / "models" / "m" / "checkpoint.pt", "m")
    for key in ("torch_rng", "shuffle_rng"):
        assert ckpt[key].device.type == "cpu" and ckpt[key].dtype == torch.uint8, key
    torch.Generator().set_state(ckpt["shuffle_rng"])
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())


def test_divergence_stops_training_and_marks_the_run_failed(packed, tmp_path, store):
    from mlflow.tracking import MlflowClient

    params = params_for({"type": "wgan", "epochs": 3, "batch_size": 16, "lr": 1e30, "width": 8,
                         "clip_value": 1e30, "optimizer": "adam"})
    with pytest.raises(TrainingDiverged, match=r"models\.m: .* became"):
        run(params, packed, tmp_path)
    out = tmp_path / "models" / "m"
    assert not (out / "model.pt").exists()
    run_id = json.loads((out / "mlflow_run.json").read_text())["run_id"]
    assert MlflowClient(store).get_run(run_id).info.status == "FAILED"


def test_a_training_run_records_the_machine_in_system_metrics(packed, tmp_path, monkeypatch, store):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")  # MLflow's own setting
    result = run(params_for({**DCGAN, "epochs": 6}), packed, tmp_path)
    client = MlflowClient(store)
    keys = set(client.get_run(result.run_id).data.metrics)
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= keys, sorted(keys)
    history = client.get_metric_history(result.run_id, "system/system_memory_usage_megabytes")
    assert sorted(m.step for m in history) == list(range(len(history))) and all(m.value > 0 for m in history)
    assert client.get_run(result.run_id).info.status == "FINISHED"


def test_model_is_loadable_and_generates(packed, tmp_path):
    params = params_for({"type": "cvae", "epochs": 1, "batch_size": 16, "latent_dim": 4})
    run(params, packed, tmp_path)
    model = load_model(tmp_path / "models" / "m")
    with torch.no_grad():
        images = model.generate(model.sample_latent(10), torch.arange(10))
    assert images.shape == (10, 1, 28, 28)


def test_streaming_from_hdf5_trains_the_same_bytes_as_holding_the_split_in_memory(packed, tmp_path):
    """The loader is chosen by memory budget, which must never change the experiment: with a
    block shuffle (shuffle_buffer < n) both loaders give the same batches and the same weights."""
    model = {**DCGAN, "epochs": 2}
    memory = parse_params({"seed": 3, "data": {"shuffle_buffer": 48},
                           "train": {"device": "cpu", "precision": "fp32"}, "models": {"m": model}})
    streamed = parse_params({"seed": 3, "data": {"shuffle_buffer": 48, "memory_budget_mb": 0},
                             "train": {"device": "cpu", "precision": "fp32"}, "models": {"m": model}})
    run(memory, packed, tmp_path / "memory")
    run(streamed, packed, tmp_path / "streamed")
    weights = [(tmp_path / kind / "models" / "m" / "model.pt").read_bytes() for kind in ("memory", "streamed")]
    assert weights[0] == weights[1]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """A miniature LFW packed at 32x32 RGB (no labels)."""
    from genlab.data.sources import Preprocessing
    from miniatures import lfw_archive

    raw = tmp_path_factory.mktemp("lfw-raw")
    (raw / "lfw.tgz").write_bytes(lfw_archive(people=20, images_per_person=2))
    out = tmp_path_factory.mktemp("lfw-packed") / "lfw.h5"
    pack_dataset("lfw", raw, out, Preprocessing(side=32, crop=90, test_fraction=0.2))
    return out


@pytest.mark.parametrize("kind", ["dcgan", "vae", "ae"])
def test_unlabelled_rgb_faces_train_and_generate(faces, tmp_path, kind):
    params = parse_params({"seed": 0, "data": {"dataset": "lfw"},
                           "datasets": {"lfw": {"pack": {"side": 32, "test_fraction": 0.2}}},
                           "train": {"device": "cpu", "precision": "fp32", "log_every": 2, "grid_size": 4},
                           "models": {"m": {"type": kind, "epochs": 2, "batch_size": 8, "width": 8}
                                      if kind == "dcgan" else {"type": kind, "epochs": 2, "batch_size": 8}}})
    result = run(params, faces, tmp_path)
    assert result.steps > 0
    model = load_model(tmp_path / "models" / "m")
    with torch.no_grad():
        images = model.generate(model.sample_latent(3))
    assert images.shape == (3, 3, 32, 32) and torch.isfinite(images).all()


def test_a_count_above_its_split_is_said_in_one_line_before_any_work(packed, capsys):
    from genlab.data.hdf5 import say_whole_splits

    say_whole_splits(packed, {"eval.num_real": ("test", 20000), "train.best_real": ("train", 100),
                              "evaluator.train_limit": ("train", None)})
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"note: eval.num_real: 20000 asked, but the test split of fashion-mnist ({packed}) holds 32 "
                     f"images: taking all 32; set eval.num_real: 32 to say so"]


WITHOUT_MLFLOW = """
import importlib.abc, sys
from pathlib import Path

class Missing(importlib.abc.MetaPathFinder):  # as on a machine where MLflow and DVC are not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mlflow", "dvc"):
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, Missing())
from genlab.config import parse_params
from genlab.models.files import load_model
from genlab.training.loop import train_model

params = parse_params({"seed": 3, "train": {"device": "cpu", "precision": "fp32", "log_every": 3}, "models": {"m": %r}})
out = Path(sys.argv[2])
train_model(params, "m", Path(sys.argv[1]), out / "models" / "m", out / "plots" / "m.csv")
load_model(out / "models" / "m")
print("mlflow imported:", any(name.split(".")[0] == "mlflow" for name in sys.modules))
"""


@pytest.mark.slow
def test_with_tracking_off_training_runs_where_mlflow_is_not_installed(packed, tmp_path):
    """GENLAB_TRACKING=off never imports MLflow (a GPU machine with torch alone trains, benchmarks/gpu_check.py),
    and trains the bytes a tracked run trains."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "GENLAB_TRACKING": "off"}
    proc = subprocess.run([sys.executable, "-c", WITHOUT_MLFLOW % DCGAN, str(packed), str(tmp_path / "off")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mlflow imported: False" in proc.stdout
    run(params_for(DCGAN), packed, tmp_path / "on")
    assert ((tmp_path / "off" / "models" / "m" / "model.pt").read_bytes()
            == (tmp_path / "on" / "models" / "m" / "model.pt").read_bytes())
    assert not (tmp_path / "off" / "models" / "m" / "mlflow_run.json").exists()


def test_a_plan_counts_the_epoch_as_the_loader_does_before_the_data_is_loaded(packed, tmp_path):
    """plan_training reads the epoch's rows from the file's shapes (data.epoch_rows): the same n that
    open_train_data gives, for a split, a limited split and an unpaired task's smaller domain."""
    import h5py
    import numpy as np

    from genlab.training.data import epoch_rows, open_train_data
    from genlab.training.plan import plan_training

    plan = plan_training(params_for({**DCGAN, "batch_size": 48, "steps_per_epoch": 2}), "m", 3, packed,
                         tmp_path / "m", tmp_path / "m.csv")
    data = open_train_data(packed, device=plan.device, **plan.loader)
    assert (plan.n_images, plan.batch, plan.steps_per_epoch, plan.total_steps) == (data.n, 48, 2, 4)
    assert plan.fingerprint(None) == plan.fingerprint({}) != plan.fingerprint({"features": "abc"})

    unpaired = tmp_path / "unpaired.h5"
    with h5py.File(unpaired, "w") as f:
        f.attrs["paired"] = False
        f.create_dataset("train/inputs", data=np.zeros((10, 1, 4, 4), np.uint8))
        f.create_dataset("train/images", data=np.zeros((7, 1, 4, 4), np.uint8))
    for limit in (None, 5, 8):
        n = open_train_data(unpaired, limit=limit, device="cpu", memory_budget_bytes=1 << 20, shuffle_buffer=64).n
        assert epoch_rows(unpaired, limit=limit) == n == min(7, limit or 7)
