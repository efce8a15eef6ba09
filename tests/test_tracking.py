"""TrainingRun against a real SQLite store: a reopened run logs no step twice; a store that stops
answering raises TrackingLost once and later calls are skipped; an unreachable server is named."""
from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from genlab.errors import GenlabError
from genlab.tracking import TrainingRun, require_store
from genlab.tracking.store import TrackingLost, TrackingUnavailable, check_store


def new_run(tmp_path) -> TrainingRun:
    return TrainingRun.create(experiment="e", run_name="m", params={"a": 1}, tags={"genlab.model": "m"},
                              run_dir=tmp_path / "models" / "m")


def test_a_reopened_run_logs_each_step_and_image_once(store, tmp_path):
    run = new_run(tmp_path)
    for step in range(1, 11):
        run.log_metrics({"loss": step * 1.0, "score": 0.5}, step=step)
    run.flush()
    run.log_image(np.zeros((4, 4, 3), np.uint8), key="samples", step=1)
    run.terminate(ok=False)

    resumed = TrainingRun.from_dir(tmp_path / "models" / "m")
    resumed.reopen()  # as a stage resuming from an earlier checkpoint: it replays steps 6..10
    for step in range(6, 16):
        resumed.log_metrics({"loss": step * 1.0, "score": 0.5}, step=step)
    resumed.log_image(np.zeros((4, 4, 3), np.uint8), key="samples", step=1)
    resumed.log_image(np.zeros((4, 4, 3), np.uint8), key="samples", step=2)
    resumed.terminate(ok=True)

    client = MlflowClient(tracking_uri=store)
    assert client.get_run(run.run_id).info.status == "FINISHED"
    for key in ("loss", "score"):
        assert sorted(m.step for m in client.get_metric_history(run.run_id, key)) == list(range(1, 16))
    images = [a.path for a in client.list_artifacts(run.run_id, "images") if a.path.endswith(".png")]
    assert sorted(p.split("+step+")[1].split("+")[0] for p in images) == ["1", "2"]


def test_new_experiments_open_as_model_training_in_the_ui(store, tmp_path):
    new_run(tmp_path)
    experiment = MlflowClient(tracking_uri=store).get_experiment_by_name("e")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_store_that_stops_answering_raises_tracking_lost_once(store, tmp_path, monkeypatch):
    run = new_run(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    from genlab.server import free_port

    run.client = MlflowClient(tracking_uri=f"http://127.0.0.1:{free_port()}")  # the server went away
    run.log_metrics({"loss": 1.0}, step=1)
    with pytest.raises(TrackingLost, match="stopped answering") as err:
        run.flush()
    assert isinstance(err.value, GenlabError) and run.lost
    run.terminate(ok=False)  # skipped: no second wait on a dead server


def test_an_unreachable_server_is_named_with_what_to_do(monkeypatch):
    from genlab.server import free_port

    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingUnavailable, match=rf"{uri} is not reachable .*make server"):
        check_store(uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingUnavailable):
        require_store()
    monkeypatch.setenv("GENLAB_TRACKING", "off")
    require_store()  # tracking off: nothing to reach
    check_store("sqlite:///nowhere/mlflow.db")  # local stores are opened by MLflow itself
