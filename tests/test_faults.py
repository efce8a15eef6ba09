"""Faults a team meets, for real: an unreachable tracking server, a server that goes away mid-training,
a train stage killed with SIGKILL mid-epoch. Each interrupted stage resumes under `dvc repro` in the
same MLflow run, logs every metric step exactly once and ends with the bytes of an uninterrupted run."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from projects import BIN, MIRROR, dvc, env_for, logged, make_project, start_logged, start_mlflow_server, tiny_params

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not MIRROR.exists(), reason="needs `apt-get install dataset-fashion-mnist`")]

# 400 steps per epoch, 3 epochs, a metric every 2 steps: MLflow receives a batch mid-epoch (every
# 250 steps of 4 metrics), so a kill after it leaves steps in the store that the resumed run replays.
STEPS_PER_EPOCH, EPOCHS = 400, 3
GAN = {"gan": {"type": "gan", "dataset": "fashion-mnist", "epochs": EPOCHS, "batch_size": 16}}
METRICS = ("loss_g", "loss_d", "real_score", "fake_score")
SEED_DIR = Path("models/gan/seed-0")  # the one training seed of tiny_params


def params() -> dict:
    p = tiny_params(GAN)
    p["data"]["train_limit"] = STEPS_PER_EPOCH * 16
    return p


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A project whose data and dataset classifier are built (`dvc repro evaluator@fashion-mnist`, no MLflow
    store yet): each test trains in a copy of its own."""
    repo = make_project(tmp_path_factory.mktemp("prepared") / "repo", params())
    dvc(repo, "repro", "evaluator@fashion-mnist")
    assert not (repo / "mlflow.db").exists()
    return repo


def copy_of(prepared: Path, where: Path) -> Path:
    repo = where / "repo"
    shutil.copytree(prepared, repo, symlinks=True)
    return repo


@pytest.fixture(scope="module")
def reference(prepared, tmp_path_factory) -> bytes:
    """model.pt of an uninterrupted run (tracking off: logging never changes what is trained)."""
    repo = copy_of(prepared, tmp_path_factory.mktemp("reference"))
    dvc(repo, "repro", "train@gan", GENLAB_TRACKING="off")
    return (repo / SEED_DIR / "model.pt").read_bytes()


def start_train(repo: Path, **env: str) -> subprocess.Popen:
    return start_logged([str(BIN / "dvc"), "repro", "train@gan"], repo.parent / "train.log", cwd=repo,
                        env=env_for(repo, **env))


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the stage ended before {what}:\n{logged(proc)[-3000:]}")
        time.sleep(0.05)
    kill_group(proc)
    raise AssertionError(f"no {what} within {timeout:.0f} s; the stage printed:\n{logged(proc)[-3000:]}")


def train_pids(repo: Path) -> list[int]:
    """The train stage's python processes in `repo`. DVC starts a stage as `$SHELL -c CMD`, and dash
    (Debian's /bin/sh, DVC's shell when SHELL is unset) forks rather than execs: killing that shell would
    leave training running on, so a match is a process whose argv holds the script as an argument."""
    out = subprocess.run(["pgrep", "-f", "pipeline/train.py gan"], capture_output=True, text=True).stdout.split()
    pids = []
    for pid in out:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cwd = Path(f"/proc/{pid}/cwd").resolve()
        except OSError:  # ended meanwhile
            continue
        if b"pipeline/train.py" in argv and cwd == repo.resolve():
            pids.append(int(pid))
    return pids


def train_pid(repo: Path) -> int:
    pids = train_pids(repo)
    assert len(pids) == 1, f"expected one train stage process in {repo}, found {pids}"
    return pids[0]


def logged_steps_sqlite(db: Path) -> int:
    """The last loss_d step the SQLite store holds (read while the stage writes it)."""
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
        try:
            return con.execute("SELECT max(step) FROM metrics WHERE key = 'loss_d'").fetchone()[0] or 0
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def assert_one_complete_run(uri: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("fashion-mnist")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("genlab.role") == "parent"]
    seeds = [r for r in runs if r.data.tags.get("genlab.seed") == "0"]
    assert len(runs) == 2 and len(parents) == 1 and len(seeds) == 1, [(r.info.run_id, r.data.tags) for r in runs]
    run = seeds[0]
    assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert run.info.status == "FINISHED"
    total = STEPS_PER_EPOCH * EPOCHS
    for key in METRICS:  # every step from 1 to the end exactly once: none missing, none twice
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
        assert steps == list(range(1, total + 1)), (key, len(steps), steps[:5])
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images") if a.path.endswith(".png")]
    assert sorted(int(p.split("+step+")[1].split("+")[0]) for p in images) == list(range(1, EPOCHS + 1))


def test_unreachable_server_fails_the_train_stage_in_seconds(prepared, tmp_path):
    from genlab.server import free_port

    repo = copy_of(prepared, tmp_path)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    proc = dvc(repo, "repro", "train@gan", check=False, MLFLOW_TRACKING_URI=uri)
    elapsed = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"MLflow tracking server {uri} is not reachable" in out and "make server" in out, out[-2000:]
    assert "Traceback" not in out
    assert elapsed < 60, f"took {elapsed:.1f} s to fail"  # ~16 s alone; MLflow's own retries take minutes
    assert not (repo / SEED_DIR / "checkpoint.pt").exists()


def test_sigkill_mid_epoch_resumes_under_dvc_repro_to_the_same_bytes(prepared, tmp_path, reference):
    repo = copy_of(prepared, tmp_path)
    proc = start_train(repo)
    # after the first epoch's checkpoint and a mid-epoch batch of the second epoch reached MLflow
    wait_for(lambda: logged_steps_sqlite(repo / "mlflow.db") > STEPS_PER_EPOCH, proc, "a logged step of epoch 2")
    os.kill(train_pid(repo), signal.SIGKILL)
    assert proc.wait(timeout=60) != 0
    assert train_pids(repo) == []  # nothing trains on behind the resumed stage
    assert (repo / SEED_DIR / "checkpoint.pt").exists() and not (repo / SEED_DIR / "model.pt").exists()

    resumed = dvc(repo, "repro", "train@gan")
    assert "resuming from epoch" in resumed.stdout + resumed.stderr
    assert (repo / SEED_DIR / "model.pt").read_bytes() == reference
    assert_one_complete_run(f"sqlite:///{repo / 'mlflow.db'}")
    assert dvc(repo, "status", "train@gan").stdout.strip() == "Data and pipelines are up to date."


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_server_lost_mid_training_stops_the_stage_and_the_rerun_resumes_in_the_same_run(prepared, tmp_path,
                                                                                       reference):
    from genlab.server import free_port

    repo = copy_of(prepared, tmp_path)
    store, port = tmp_path / "store", free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_mlflow_server(store, port)
    try:
        proc = start_train(repo, MLFLOW_TRACKING_URI=uri)
        wait_for(lambda: (repo / SEED_DIR / "checkpoint.pt").exists(), proc, "the first checkpoint")
        kill_group(server)
        lost_at = time.monotonic()
        proc.wait(timeout=180)
        out = logged(proc)
        stopped_after = time.monotonic() - lost_at
        assert proc.returncode != 0
        assert f"MLflow tracking store {uri} stopped answering" in out, out[-3000:]
        assert "dvc repro` resumes from the checkpoint in the same MLflow run" in out and "Traceback" not in out
        assert stopped_after < 90, f"the stage took {stopped_after:.0f} s to stop"
        assert (repo / SEED_DIR / "checkpoint.pt").exists()

        server = start_mlflow_server(store, port)
        resumed = dvc(repo, "repro", "train@gan", MLFLOW_TRACKING_URI=uri)
        assert "resuming from epoch" in resumed.stdout + resumed.stderr
        assert (repo / SEED_DIR / "model.pt").read_bytes() == reference
        assert_one_complete_run(uri)
    finally:
        if server.poll() is None:
            kill_group(server)
