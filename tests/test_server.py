"""The team server for real: PostgreSQL and `mlflow server` started by `genlab server` on free ports,
the tiny pipeline and two queued experiments run by `dvc queue start -j 2` logging into it at once,
then read back with MlflowClient: every run FINISHED, distinct, complete."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from projects import BIN, MIRROR, dvc, env_for, git, logged, make_project, start_logged, tiny_params

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not MIRROR.exists(), reason="needs `apt-get install dataset-fashion-mnist`")]


def _postgres_available() -> bool:
    from genlab.server import ServerError, postgres_bin

    try:
        postgres_bin("initdb")
    except ServerError:
        return False
    return os.geteuid() != 0 or bool(shutil.which("runuser"))


@pytest.fixture(scope="module")
def server():
    if not _postgres_available():
        pytest.skip("needs PostgreSQL (`apt-get install postgresql`)")
    from genlab.server import free_port, wait_until_up

    # Under /tmp and open to traversal: PostgreSQL runs as the unprivileged `postgres` user when root runs this.
    base = Path(tempfile.mkdtemp(prefix="genlab-server-", dir="/tmp"))
    base.chmod(0o755)
    port = free_port()
    proc = subprocess.Popen([str(BIN / "genlab"), "server", "--dir", str(base / "server"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc, timeout=180)
        yield {"url": url, "dir": base / "server"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        assert "stopped the MLflow server and PostgreSQL" in out, out
        shutil.rmtree(base, ignore_errors=True)


GAN = {"gan": {"type": "gan", "dataset": "fashion-mnist", "epochs": 2, "batch_size": 32, "lr": 0.001}}


def start_queue(repo: Path, uri: str, jobs: int) -> None:
    """`dvc queue start -j jobs`, its output to a file. The workers it spawns inherit its stdout and stderr:
    with pipes (capture_output) it would return only when the last worker exits, and never if one hangs."""
    proc = start_logged([str(BIN / "dvc"), "queue", "start", "-j", str(jobs)], repo.parent / "queue-start.log",
                        cwd=repo, env=env_for(repo, MLFLOW_TRACKING_URI=uri))
    assert proc.wait(timeout=120) == 0, logged(proc)


def wait_for_queue(repo: Path, uri: str, timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        time.sleep(10)  # each poll is a `dvc` process: ~1.5 s of a core taken from the experiments it waits for
        with contextlib.suppress(subprocess.TimeoutExpired):  # a poll stuck on the queue's lock: poll again
            status = dvc(repo, "queue", "status", timeout=60, MLFLOW_TRACKING_URI=uri).stdout
            if "Queued" not in status and "Running" not in status:
                return status
    raise AssertionError(f"queued experiments still running after {timeout:.0f} s:\n{status}")


def test_queued_experiments_log_in_parallel_into_the_postgresql_server(server, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = server["url"]
    repo = make_project(tmp_path / "repo", tiny_params(GAN))
    dvc(repo, "repro", MLFLOW_TRACKING_URI=uri)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "baseline results")
    for lr in ("0.0005", "0.002"):
        dvc(repo, "exp", "run", "--queue", "-S", f"models.gan.lr={lr}", MLFLOW_TRACKING_URI=uri)
    start_queue(repo, uri, jobs=2)
    status = wait_for_queue(repo, uri)
    assert status.count("Success") == 2, status

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("fashion-mnist")
    gan = "tags.`genlab.model` = 'gan'"
    runs = client.search_runs([experiment.experiment_id], filter_string=f"{gan} and tags.`genlab.seed` = '0'")
    parents = client.search_runs([experiment.experiment_id], filter_string=f"{gan} and tags.`genlab.role` = 'parent'")
    assert len(runs) == 3 and len({r.info.run_id for r in runs}) == 3
    # one parent per experiment, each seed run nested under its own
    assert sorted(r.data.tags["mlflow.parentRunId"] for r in runs) == sorted(r.info.run_id for r in parents)
    assert sorted(r.data.params["model.lr"] for r in runs) == ["0.0005", "0.001", "0.002"]
    for run in runs:
        assert run.info.status == "FINISHED", run.info.run_id
        assert "fid" in run.data.metrics and len(client.get_metric_history(run.info.run_id, "loss_d")) >= 5
        lineage = {a.path for a in client.list_artifacts(run.info.run_id, "lineage")}
        assert lineage == {"lineage/train@gan.json", "lineage/evaluate@gan.json"}
    for parent in parents:
        assert "fid.mean" in parent.data.metrics, parent.data.metrics
    queued = [r for r in runs if r.data.params["model.lr"] != "0.001"]
    assert all(r.data.tags.get("dvc.exp_name") for r in queued)
    # the artifacts went through the server into its own store, not into the repo
    stored = list((server["dir"] / "artifacts").rglob("evaluate@gan.json"))
    assert len(stored) == 3 + len(parents) and not (repo / "mlartifacts").exists()
