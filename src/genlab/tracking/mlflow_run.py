"""MLflow tracking: one run per trained model, metrics logged in batches, nothing logged twice.

Where the store is and whether it answers: genlab.tracking.store. MLflow itself is imported on first
use of a store: with tracking off (GENLAB_TRACKING=off) a run never imports it, so training, sampling
and evaluating work where MLflow is not installed (e.g. a GPU machine with torch alone).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import requests

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

from genlab.errors import GenlabError
from genlab.io import write_json_atomic
from genlab.tracking.store import bound_http_retries, lost, repo_root, tracking_enabled, tracking_uri

RUN_FILE = "mlflow_run.json"
#: The image keys (MLflow's image grid compares runs key by key): every epoch's sample grid at step = epoch,
#: and the grid of the samples the evaluate stage scored, at step 0.
GRID_KEY, FINAL_GRID_KEY = "samples", "final_samples"
_MAX_BATCH = 1000  # MLflow's limit on metrics per log_batch call
#: Seconds between samples of a training run's system metrics (MLflow's MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL
#: overrides it); a run shorter than one interval records none.
SYSTEM_METRICS_INTERVAL = 5.0
# What MLflow 3's UI shows an experiment as: model training runs, not the GenAI view (traces, tokens).
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
# MlflowClient.log_image's file names: images/<key>+step+<step>+timestamp+<ms>+<uuid>.png (`%` separated
# before MLflow 3), beside a `...+compressed.webp` thumbnail this does not match.
IMAGE_FILE = re.compile(r"(?P<key>.+?)[+%]step[+%](?P<step>\d+)[+%]timestamp[+%](?P<ts>\d+)[+%][0-9a-f-]+\.png")
RUN_ID = re.compile(r"[0-9a-f]{32}")
RUN_TAGS = ("genlab.model", "dvc.exp_name")  # what a run's name may be, tried in this order


def _mlflow():
    """The mlflow package with the submodules used here (about 2 s to import)."""
    import mlflow
    import mlflow.entities
    import mlflow.exceptions
    import mlflow.tracking

    return mlflow


def client(root: Path | None = None) -> MlflowClient:
    bound_http_retries()
    return _mlflow().tracking.MlflowClient(tracking_uri=tracking_uri(root))


def experiment_id(cl: MlflowClient, name: str, root: Path | None = None) -> str:
    exp = cl.get_experiment_by_name(name)
    if exp is not None:
        for key, value in EXPERIMENT_TAGS.items():  # stores made before genlab set the kind
            if exp.tags.get(key) != value:
                cl.set_experiment_tag(exp.experiment_id, key, value)
        return exp.experiment_id
    artifacts = None
    if not os.environ.get("MLFLOW_TRACKING_URI"):  # a server decides its own artifact store
        artifacts = ((root or repo_root()) / "mlartifacts" / name).as_uri()
    try:
        return cl.create_experiment(name, artifact_location=artifacts, tags=EXPERIMENT_TAGS)
    except _mlflow().exceptions.MlflowException:  # created meanwhile by a parallel stage
        return cl.get_experiment_by_name(name).experiment_id


def provenance_tags(root: Path, stage: str, data_hash: str | None, outputs=()) -> dict[str, str]:
    """Tags set when a run is created: where the code came from and what it ran on. `outputs`: the running
    stage's own output paths (relative to `root`), which it may have begun writing before dvc.lock lists
    them (a model's parent run file, written before its seeds' runs): not a dirty tree."""
    from genlab.tracking.lineage import locked_outputs, cpu_info, environment, git_state

    # the runs table's Source column: the command that re-runs it
    tags = {"genlab.stage": stage, "mlflow.source.name": f"dvc repro {stage}", "mlflow.source.type": "LOCAL"}
    git = git_state(root, locked_outputs(root) | set(outputs))
    if git["commit"]:
        tags["git.commit"] = git["commit"]
        tags["mlflow.source.git.commit"] = git["commit"]
        tags["git.dirty"] = str(bool(git["dirty_paths"]))
    for env_key, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.exp_baseline")):
        if os.environ.get(env_key):
            tags[tag] = os.environ[env_key]
    if data_hash:
        tags["data.hash"] = data_hash
    env = environment()
    tags.update({"env.python": env["python"], "env.torch": env["torch"], "env.cpu": cpu_info()["model"],
                 "env.cpu_flags": " ".join(cpu_info().get("flags", [])),
                 "env.cuda": ", ".join(env["cuda"].get("devices", [])) or "none"})
    return tags


def dataset_input(name: str, path: Path, md5: str, n_images: int) -> dict[str, str]:
    """A packed file as an MLflow dataset input (the fields of mlflow.entities.Dataset): the runs table's
    Dataset column, digest = its md5."""
    return {"name": name, "digest": md5[:12], "source_type": "local",
            "source": json.dumps({"uri": str(path), "md5": md5}),
            "profile": json.dumps({"num_images": n_images, "split": "train"})}


class SystemMetrics:
    """A started system-metrics monitor (or none, with tracking off); finish() stops it and publishes the
    samples it holds, once."""

    def __init__(self, monitor):
        self._monitor = monitor

    def finish(self) -> None:
        if self._monitor is not None:
            self._monitor.finish()
            self._monitor = None


class TrainingRun:
    """One MLflow run, identified by the run id saved in the model's output directory.

    Every call to the store goes through `_call`: with tracking off (GENLAB_TRACKING=off) it does
    nothing; a store that stops answering raises TrackingLost once, and later calls (the FAILED
    status of a stage that is ending anyway) are skipped rather than retried against a dead server.
    A run reopened to resume skips the metric steps and image steps the store already holds, so an
    interrupted stage that replays the steps after its last checkpoint logs each step exactly once.
    """

    def __init__(self, cl: MlflowClient | None, run_id: str | None):
        self.client = cl  # None: tracking is off (GENLAB_TRACKING=off), every log call does nothing
        self.run_id = run_id
        self.lost = False
        self._pending: list = []  # mlflow.entities.Metric
        self._logged_through: dict[str, int] = {}   # metric -> last step the store holds (resumed runs)
        self._logged_images: set[tuple[str, int]] = set()

    @contextlib.contextmanager
    def _guard(self):
        try:
            yield
        except (_mlflow().exceptions.MlflowException, requests.RequestException, OSError) as err:
            self.lost = True
            raise lost(self.client.tracking_uri, err) from err

    def _call(self, method: str, *args, **kwargs):
        if self.client is None or self.lost:
            return None
        with self._guard():
            return getattr(self.client, method)(*args, **kwargs)

    # -- creation / lookup ---------------------------------------------------------------
    @classmethod
    def create(cls, *, experiment: str, run_name: str, params: Mapping[str, Any],
               tags: Mapping[str, str], run_dir: Path, dataset: Mapping[str, str] | None = None) -> "TrainingRun":
        """`dataset`: dataset_input()'s fields, shown in the runs table's Dataset column."""
        if not tracking_enabled():
            return cls(None, None)
        entities = _mlflow().entities
        root = repo_root()
        cl = client(root)
        self = cls(cl, None)
        with self._guard():
            exp_id = experiment_id(cl, experiment, root)
        run = self._call("create_run", exp_id, run_name=run_name, tags=dict(tags))
        self.run_id = run.info.run_id
        items = [entities.Param(k, str(v)) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self._call("log_batch", self.run_id, params=items[i:i + 100])
        if dataset is not None:  # the runs table's Dataset column
            self._call("log_inputs", self.run_id, [entities.DatasetInput(
                entities.Dataset(**dataset), [entities.InputTag("mlflow.data.context", "train")])])
        write_json_atomic(run_dir / RUN_FILE, {"run_id": self.run_id, "experiment": experiment,
                                               "tracking_uri": tracking_uri(root)})
        return self

    @classmethod
    def from_dir(cls, run_dir: Path) -> "TrainingRun":
        path = Path(run_dir) / RUN_FILE
        if not tracking_enabled():
            return cls(None, None)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no MLflow run id; run the train stage for this model first")
        info = json.loads(path.read_text())
        return cls(client(), info["run_id"])

    def reopen(self) -> None:
        """Mark the run RUNNING again and note what the store already holds, to log nothing twice."""
        run = self._call("get_run", self.run_id)
        if run is None:
            return
        self._call("update_run", self.run_id, status="RUNNING")
        for key in run.data.metrics:
            history = self._call("get_metric_history", self.run_id, key)
            self._logged_through[key] = max(m.step for m in history)
        for entry in self._call("list_artifacts", self.run_id, "images") or ():
            match = IMAGE_FILE.fullmatch(Path(entry.path).name)
            if match:
                self._logged_images.add((match["key"], int(match["step"])))

    # -- logging -------------------------------------------------------------------------
    def log_metrics(self, values: Mapping[str, float], step: int) -> None:
        """Queue metrics; they reach the store on flush() (one call per ~1000 values)."""
        if self.client is None:
            return
        ts = int(time.time() * 1000)
        metric = _mlflow().entities.Metric
        self._pending.extend(metric(k, float(v), ts, step) for k, v in values.items()
                             if step > self._logged_through.get(k, -1))
        if len(self._pending) >= _MAX_BATCH:
            self.flush()

    def flush(self) -> None:
        while self._pending and self.client is not None:
            batch = self._pending[:_MAX_BATCH]
            self._call("log_batch", self.run_id, metrics=batch)
            self._pending = self._pending[_MAX_BATCH:]

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if self.client is not None:
            tag = _mlflow().entities.RunTag
            self._call("log_batch", self.run_id, tags=[tag(k, str(v)) for k, v in tags.items()])

    def log_image(self, image, key: str, step: int = 0) -> None:
        """A step-indexed image: the MLflow UI shows how it evolves across steps."""
        if (key, step) not in self._logged_images:
            self._call("log_image", self.run_id, image, key=key, step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._call("log_artifact", self.run_id, str(path), artifact_path)

    def log_dict(self, obj: Mapping[str, Any], name: str) -> None:
        self._call("log_dict", self.run_id, dict(obj), name)

    def system_metrics(self) -> "SystemMetrics":
        """Start sampling the machine into this run: MLflow's `system/*` metrics (CPU and memory, disk and
        network; the GPU where NVML finds one), on MLflow's own daemon thread. A run that ends well calls
        finish() before terminate(); a failed one need not: the thread stops once it sees the run ended
        (or the store gone), and never holds up a failing stage."""
        monitor = None
        if self.client is not None and not self.lost:
            import logging

            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop lines a seed

            with self._guard():  # resume_logging: a resumed run goes on from its last system step
                monitor = SystemMetricsMonitor(self.run_id, sampling_interval=SYSTEM_METRICS_INTERVAL,
                                               resume_logging=True, tracking_uri=self.client.tracking_uri)
            monitor.start()
        return SystemMetrics(monitor)

    def terminate(self, ok: bool = True) -> None:
        if self.client is None:
            return
        if ok:
            self.flush()
        status = _mlflow().entities.RunStatus
        self._call("set_terminated", self.run_id, status.to_string(status.FINISHED if ok else status.FAILED))

    def log_lineage(self, stage: str, lineage: Mapping[str, Any] | None = None) -> None:
        """The stage's dvc.lock entry, git state and environment (genlab.tracking.lineage), as
        `lineage/<stage>.json`: call it after the stage wrote all its outputs. `lineage`: one already
        computed for this stage (the stage's seed runs and parent share it)."""
        if self.client is None:
            return
        from genlab.tracking.lineage import stage_lineage

        self.log_dict(lineage or stage_lineage(stage), f"lineage/{stage}.json")


def log_lineage(runs, stage: str) -> None:
    """One stage's lineage, computed once (it hashes the stage's deps and outputs), logged to every run."""
    runs = [run for run in runs if run.client is not None]
    if not runs:
        return
    from genlab.tracking.lineage import stage_lineage

    lineage = stage_lineage(stage)
    for run in runs:
        run.log_lineage(stage, lineage)


class ParentRun(TrainingRun):
    """A model's parent run: one row per model in the MLflow UI, its seed runs nested beneath (their tag
    mlflow.parentRunId), holding the aggregates over seeds (evaluate) and the spread figure (report).

    Kept in models/<m>/mlflow_run.json with the key of the settings its seeds share: reopened while the
    key is the same (a seed added), replaced by a new run when the model's params change."""

    @classmethod
    def open(cls, run_dir: Path, *, experiment: str, model_name: str, model_type: str, seeds, key: str,
             params: Mapping[str, Any]) -> "ParentRun":
        if not tracking_enabled():
            return cls(None, None)
        path = Path(run_dir) / RUN_FILE
        if path.exists():
            info = json.loads(path.read_text())
            if info.get("family") == key:
                self = cls(client(), info["run_id"])
                if self._call("get_run", self.run_id) is not None:
                    self._call("update_run", self.run_id, status="RUNNING")
                    self.set_tags({"genlab.seeds": ",".join(map(str, seeds))})
                    return self
        root = repo_root()
        tags = {**provenance_tags(root, f"train@{model_name}", None), "genlab.model": model_name,
                "genlab.model_type": model_type, "genlab.role": "parent", "genlab.seeds": ",".join(map(str, seeds)),
                "mlflow.note.content": f"{model_name}: one child run per training seed; metrics here are over seeds "
                                       f"(`.mean`, `.std` = training-seed spread, `.min`, `.max`)"}
        self = cls.create(experiment=experiment, run_name=model_name, params=params, tags=tags, run_dir=run_dir)
        info = json.loads(path.read_text())
        write_json_atomic(path, {**info, "family": key})
        return self

    def log_budget(self, results) -> None:
        """The seeds' training throughput: the equal-budget side of the comparison."""
        rates = [r.images_per_second for r in results if not r.kept and r.images_per_second]
        if rates:
            self.log_metrics({"train_images_per_second.mean": sum(rates) / len(rates)}, step=0)
