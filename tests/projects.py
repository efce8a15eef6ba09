"""Temporary genlab projects for the end-to-end tests: a git repo holding the pipeline and tiny params,
driven by the real `dvc` of this environment."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MIRROR = Path("/usr/share/datasets/fashion-mnist")
PROJECT_FILES = ("dvc.yaml", ".dvcignore", "pipeline", "src")


def make_project(repo: Path, params: dict) -> Path:
    """The project's pipeline and code in a new git repo with `params`, committed, `dvc init`-ed."""
    repo.mkdir(parents=True, exist_ok=True)
    for item in PROJECT_FILES:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, repo / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, repo / item)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".gitignore").write_text("/mlflow.db\n/mlartifacts/\n")
    git(repo, "init", "-q")
    dvc(repo, "init", "-q")
    shutil.copytree(REPO / ".dvc" / "plots", repo / ".dvc" / "plots")  # the plot templates dvc.yaml names
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pipeline")
    return repo


def env_for(repo: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("MLFLOW_TRACKING_URI", None)
    # as the project's .dvc/config has it: no `dvc daemon analytics` process after every dvc command (~0.7 s of
    # a core each, and a connection this machine refuses)
    env["DVC_NO_ANALYTICS"] = "1"
    env["PYTHONPATH"] = str(repo / "src")  # the project's own code runs, the code dvc.lock hashes
    env.update(extra)
    return env


def dvc(repo: Path, *args: str, check: bool = True, timeout: float | None = None, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=repo, env=env_for(repo, **env), capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def start_logged(cmd: list[str], log: Path, **popen) -> subprocess.Popen:
    """`cmd` in the background, in a session of its own, its stdout and stderr to the file `log`
    (`proc.log`): a pipe nobody reads while a stage runs fills up (~60 KiB of progress bars and MLflow's
    migrations) and blocks the stage on its next write."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True, **popen)
    proc.log = log
    return proc


def start_mlflow_server(store: Path, port: int) -> subprocess.Popen:
    """A real `mlflow server` as `genlab server` runs one, on a sqlite store in `store` and an artifact folder
    it serves (`store`/artifacts), at 127.0.0.1:`port`, in a session of its own (stop it with its process
    group), printing to `store`/mlflow-server.log; returns once it answers. One worker and no job runner
    (7 huey consumer processes otherwise): it answers in ~15 s instead of ~40 s on 2 cores."""
    from genlab.server import wait_until_up

    store.mkdir(parents=True, exist_ok=True)
    proc = start_logged([str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
                         "--artifacts-destination", str(store / "artifacts"), "--serve-artifacts",
                         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                        store / "mlflow-server.log", env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        wait_until_up(f"http://127.0.0.1:{port}", proc)
    except Exception as exc:
        stop_group(proc)
        raise AssertionError(f"{exc}; the server printed:\n{logged(proc)[-3000:]}") from exc
    return proc


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """End a server started with start_new_session=True, its whole process group (the CLI, uvicorn and
    its workers, MLflow's job runner): SIGTERM, then SIGKILL after `timeout` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def logged(proc: subprocess.Popen) -> str:
    """What a process started by start_logged has printed so far."""
    return proc.log.read_text(errors="replace")


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, env=env_for(repo), capture_output=True, text=True)
    assert proc.returncode == 0, f"git {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def tiny_params(models: dict) -> dict:
    """Fashion-MNIST from the Debian mirror, 192 training images, 24 samples a seed (12 of them by
    Inception): seconds per stage."""
    return {
        "seed": 0,
        "seeds": [0],  # dvc.yaml's train/sample/evaluate stages depend on the key: keep it
        "report": {},  # the report stage depends on it (all defaults)
        "data": {"dataset": "fashion-mnist", "train_limit": 192},
        "datasets": {"fashion-mnist": {"download": {"source": str(MIRROR)}, "pack": {}}},
        "tasks": {},  # dvc.yaml's task stages iterate over it: the key must be there, empty or not
        "train": {"device": "cpu", "precision": "fp32", "log_every": 2, "grid_size": 16},
        "sample": {"num_samples": 24, "batch_size": 12, "grid_size": 10},
        "evaluator": {"epochs": 1, "batch_size": 64, "lr": 0.001, "train_limit": 512, "memorization_train": 1000},
        "eval": {"num_real": 12, "num_fake": 12, "batch_size": 12, "precision": "fp32", "device": "cpu",
                 "kid_subset_size": 6, "runtime": "auto", "reference_subsets": 3},
        "models": models,
    }
