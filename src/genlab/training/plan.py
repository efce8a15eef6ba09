"""One seed's training, resolved once from params.yaml: the values the loop (genlab.training.loop) reads.

`plan_training` turns the composed params, a model's name, a seed and the stage's paths into a
`TrainPlan`: the device and precision this process trains in, the epoch's shape (batch, steps), the
grid and the best-checkpoint settings, the data's digest, the files written, what MLflow logs and
what a checkpoint must match to be resumed (`fingerprint`). A problem the params and the data
together make (a batch the processes cannot share) is said here, before any work starts.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from genlab.data.hdf5 import read_info
from genlab.device import resolve_device, resolve_precision
from genlab.errors import GenlabError
from genlab.io import file_digest
from genlab.models.base import ModelSpec
from genlab.schema import flatten
from genlab.training import distributed
from genlab.training.data import epoch_rows
from genlab.training.selection import SelectionPlan

if TYPE_CHECKING:  # the composed params, duck-typed here (genlab.config sits above training)
    from genlab.config import Params

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainPlan:
    """What one seed of one model trains, where, and into which files; nothing here changes while it trains."""

    model_name: str
    spec: ModelSpec
    seed: int
    ranks: distributed.Ranks
    device: torch.device  # this process's device (on CUDA, its local rank's GPU)
    precision: str  # fp32 | bf16: what train.precision resolved to on this device
    epochs: int
    batch: int  # the global batch: every process takes its 1/N of the rows
    steps_per_epoch: int
    log_every: int  # steps per batch of metrics sent to MLflow
    grid_size: int
    protocol_seed: int  # params.yaml's `seed`: the grid's and the best-checkpoint score's noise
    selection: SelectionPlan
    loader: Mapping[str, Any]  # open_train_data's options: limit, memory_budget_bytes, shuffle_buffer
    data_path: Path
    data_hash: str  # the packed file's md5 (genlab.io.file_digest)
    dataset: str  # the packed file's dataset: the MLflow experiment
    n_images: int  # the rows an epoch draws from
    num_classes: int
    task: Mapping[str, Any] | None  # an image-to-image task's recipe (genlab.data.tasks)
    out_dir: Path
    plots_path: Path
    parent_run_id: str | None
    fingerprint_keys: Mapping[str, Any]  # what a checkpoint must match, but what the model prepares
    run_params: Mapping[str, Any]  # the MLflow run's params that the plan knows (the model adds its own)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT

    def fingerprint(self, prepared: Mapping[str, Any] | None) -> str:
        """The fingerprint of this run once the model prepared `prepared` from the stage's other inputs."""
        return digest_keys(self.fingerprint_keys, prepared)


def plan_training(params: Params, model_name: str, seed: int, data_path: Path, out_dir: Path, plots_path: Path,
                  classifier_path: Path | None = None, *, ranks: distributed.Ranks | None = None,
                  parent_run_id: str | None = None) -> TrainPlan:
    """Resolve one seed's training of models.<model_name> from the params and the packed file (read, not loaded)."""
    ranks = ranks or distributed.current_ranks()
    spec = params.model(model_name)
    device = distributed.process_device(ranks, resolve_device(params.train["device"]))
    data_path = Path(data_path)
    data_hash = file_digest(data_path)
    info = read_info(data_path)
    n_images = epoch_rows(data_path, limit=params.data["train_limit"])
    batch = min(spec.batch_size, n_images)
    steps_per_epoch = n_images // batch  # the last partial batch is dropped: BatchNorm needs full batches
    if spec.steps_per_epoch:  # shorter epochs: the first batches of each epoch's fresh permutation
        steps_per_epoch = min(steps_per_epoch, spec.steps_per_epoch)
    if batch % ranks.world:
        raise GenlabError(f"models.{model_name}: a batch of {batch} (the split has {n_images} images) cannot be "
                          f"shared evenly by train.nproc: {ranks.world} processes; raise data.train_limit")
    precision = resolve_precision(params.train["precision"], device)
    return TrainPlan(
        model_name=model_name, spec=spec, seed=seed, ranks=ranks, device=device, precision=precision,
        epochs=spec.epochs, batch=batch, steps_per_epoch=steps_per_epoch, log_every=params.train["log_every"],
        grid_size=params.train["grid_size"], protocol_seed=params.seed,
        selection=SelectionPlan(params.train["best_metric"], params.train["best_samples"], params.train["best_real"],
                                params.seed, None if classifier_path is None else Path(classifier_path)),
        loader={"limit": params.data["train_limit"], "memory_budget_bytes": params.data["memory_budget_mb"] << 20,
                "shuffle_buffer": params.data["shuffle_buffer"]},
        data_path=data_path, data_hash=data_hash, dataset=info["dataset"], n_images=n_images,
        num_classes=len(info["class_names"]), task=info["task"],
        out_dir=Path(out_dir), plots_path=Path(plots_path),
        parent_run_id=parent_run_id,
        fingerprint_keys=fingerprint_keys(params, model_name, data_hash, seed, (device, precision)),
        run_params={**flatten({"model": spec.flat()}), **flatten({"data": params.data}),
                    **flatten({"train": params.train}), "seed": seed,
                    "train.resolved_device": device.type, "train.resolved_precision": precision})


def fingerprint(params: Params, model_name: str, data_hash: str, prepared: dict | None = None,
                seed: int | None = None) -> str:
    """What a checkpoint must match to be resumed: the model's spec, seed, data and train options, and
    what the model prepared from the stage's other inputs (SRGAN: the content features' file digest).
    The model's list of seeds is not part of it: adding a seed leaves the other seeds' runs as they are."""
    seed = params.seeds_of(model_name)[0] if seed is None else seed
    return digest_keys(fingerprint_keys(params, model_name, data_hash, seed), prepared)


def fingerprint_keys(params: Params, model_name: str, data_hash: str, seed: int,
                     resolved: tuple[torch.device, str] | None = None) -> dict[str, Any]:
    """The fingerprint's keys that the params and the data decide (all but what the model prepares); `resolved`:
    the device and precision train.device and train.precision resolved to (None: resolve them here)."""
    data = {k: v for k, v in params.data.items() if k != "memory_budget_mb"}  # the loader never changes batches
    # what `auto` resolves to here, not the word: a CPU fp32 checkpoint never resumes as CUDA bf16
    if resolved is None:
        device = resolve_device(params.train["device"])
        resolved = device, resolve_precision(params.train["precision"], device)
    device, precision = resolved
    keys = {"spec": params.models[model_name].flat(), "seed": seed, "data": data, "data_hash": data_hash,
            "train": {"device": device.type, "precision": precision}}
    keys["best"] = {k: params.train[k] for k in ("best_metric", "best_samples", "best_real")}
    if params.train["nproc"] > 1:  # the same experiment up to rounding, but not the same bytes
        keys["nproc"] = params.train["nproc"]
    return keys


def digest_keys(keys: Mapping[str, Any], prepared: Mapping[str, Any] | None = None) -> str:
    """The sha256 of the keys (and, when the model prepared anything, of that too) as sorted JSON."""
    if prepared:
        keys = {**keys, "prepared": prepared}
    return hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()
