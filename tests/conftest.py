"""Shared by every test module.

Under pytest-xdist (`make test`) the workers share the machine's cores: each worker, and every stage
process it starts, takes an equal share as its OpenMP thread count. With OpenMP's default (all cores)
in every worker, two workers on a 2-core machine thrash: `make test-fast` took 3:07 that way and 1:41
with one thread a worker (2-core AMD EPYC, Zen 3)."""
from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest


def pytest_configure(config):
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")  # set in each worker, before torch is imported
    if workers and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // int(workers)))


# The longest modules first, so that under `--dist loadfile` no worker starts one of them last
# while the others stand idle (serial minutes on a 2-core AMD EPYC: e2e 11.5, audit 5.5, faults 4, server 3).
LONGEST_FIRST = ("test_e2e.py", "test_audit.py", "test_faults.py", "test_server.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each module's own order kept


@pytest.fixture(scope="session")
def mlflow_store_at(tmp_path_factory):
    """`at(directory)` puts an empty MLflow store, `directory/mlflow.db`, in place and returns its URI.

    Opening a new sqlite store runs every MLflow schema migration (~1.6 s on a 2-core AMD EPYC, 22 times
    in `make test-fast`); each worker runs them once, into a template, and every store is a copy of it:
    the same schema MLflow would write, with its Default experiment's artifacts under `directory`."""
    from mlflow.tracking import MlflowClient

    template = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()  # creates and migrates it

    def at(directory: Path) -> str:
        path = Path(directory) / "mlflow.db"
        shutil.copyfile(template, path)
        db = sqlite3.connect(path)
        with db:  # where MLflow puts the Default experiment's artifacts: mlruns/0 beside the store
            db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                       (str(path.parent / "mlruns" / "0"),))
        db.close()
        return f"sqlite:///{path}"

    return at


@pytest.fixture
def store(tmp_path, monkeypatch, mlflow_store_at) -> str:
    """A fresh MLflow store in tmp_path, named by MLFLOW_TRACKING_URI, with the test's cwd there: its URI."""
    uri = mlflow_store_at(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri
