"""All training seeds of one model in one process: a parent MLflow run holding one child run per seed.

Each seed is its own trained model (models/<m>/seed-<s>/), resumable on its own; a seed whose finished
run is on disk with the same fingerprint is kept, so adding a seed to the list trains that seed only.
Seeds no longer listed are removed, so the directory holds what params.yaml says. The parent run
(models/<m>/mlflow_run.json) is reused while the model's params are unchanged, and a new one starts when
they change (its children are then all retrained)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from genlab.layout import remove_other_seeds, seed_path
from genlab.training import distributed
from genlab.io import file_digest
from genlab.schema import flatten
from genlab.training.loop import TrainResult, train_model
from genlab.training.plan import fingerprint

if TYPE_CHECKING:  # the composed params, duck-typed here (genlab.config sits above training)
    from genlab.config import Params


def family_key(params: Params, model_name: str, data_hash: str) -> str:
    """What the seeds of one parent run share: what a seed's checkpoint fingerprint holds (the model's
    settings, data and the train options that change what is trained), but the seed; so a parent is
    replaced exactly when its seeds are retrained, and a kept seed's run stays its child."""
    return fingerprint(params, model_name, data_hash, seed=-1)


def train_seeds(params: Params, model_name: str, data_path: Path, out_dir: Path, curves_dir: Path,
                classifier_path: Path | None = None) -> list[TrainResult]:
    """Train every seed of models.<model_name> (params.seeds_of) under one parent run; returns one result a seed."""
    from genlab.tracking.mlflow_run import ParentRun
    from genlab.tracking.store import TrackingLost

    ranks = distributed.current_ranks()
    seeds = params.seeds_of(model_name)
    spec = params.model(model_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    parent = None
    if ranks.main:
        for directory in (out_dir, curves_dir):
            dropped = remove_other_seeds(directory, seeds)
            if dropped and directory == out_dir:
                print(f"[{model_name}] seeds {', '.join(map(str, dropped))} are no longer listed: removed")
        data_hash = file_digest(data_path)
        parent = ParentRun.open(out_dir, experiment=_experiment(data_path), model_name=model_name,
                                model_type=spec.type, seeds=seeds, key=family_key(params, model_name, data_hash),
                                params={**flatten({"model": spec.flat()}), "seeds": list(seeds)})
    results = []
    try:
        for i, seed in enumerate(seeds):
            results.append(train_model(params, model_name, data_path, seed_path(out_dir, seed),
                                       seed_path(curves_dir, seed, ".csv"), classifier_path, seed=seed,
                                       parent_run_id=parent.run_id if parent else None,
                                       leave_group=i == len(seeds) - 1))
    except BaseException:
        if parent is not None:
            try:
                parent.terminate(ok=False)
            except TrackingLost:  # the store went away: the seed's own error (what to do next) is the one shown
                pass
        raise
    if parent is not None:
        parent.log_budget(results)
        parent.terminate(ok=True)
    return results


def _experiment(data_path: Path) -> str:
    from genlab.data.hdf5 import read_info

    return read_info(data_path)["dataset"]
