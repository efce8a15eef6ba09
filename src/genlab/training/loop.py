"""The training loop, one for every model: data on the device, batches sliced, pluggable steps.

The training split is loaded once from HDF5 as a uint8 tensor on the training device when it
fits `data.memory_budget_mb`, and streams from the file in shuffled blocks otherwise; either way
the batches are the same for the same seed (genlab.training.data), with no DataLoader and no
per-sample Python or PIL work. A checkpoint is
written atomically at the end of every epoch; a run that was interrupted resumes from it, in
the same MLflow run, and ends with the same bytes as one that was not. At the end of every epoch
the model is also scored (genlab.training.selection) and the best epoch's model kept as `best.pt`
beside the last (`model.pt`). Under torchrun (`train.nproc`) the same loop runs data-parallel
(genlab.training.distributed): rank 0 alone logs, scores and writes files.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from genlab.data.hdf5 import read_info
from genlab.errors import GenlabError

if TYPE_CHECKING:  # the composed params, duck-typed here (genlab.config sits above training)
    from genlab.config import Params
from genlab.io import atomic_path, file_digest
from genlab.models import GenerativeModel, build_model
from genlab.models.files import BEST_FILE, MODEL_FILE, save_model_file
from genlab.grid import grid_array
from genlab.schema import flatten
from genlab.torch_io import UnsafeWeightsFile, WeightsFileError, load_weights, save_torch_atomic
from genlab.tracking import TrainingRun, provenance_tags, repo_root
from genlab.tracking.mlflow_run import dataset_input
from genlab.tracking.store import TrackingLost
from genlab.training.data import open_train_data
from genlab.training import distributed
from genlab.device import autocast, cuda_settings, resolve_device, resolve_precision
from genlab.training.selection import Best, open_selector, own_random_state, scored_copy

CHECKPOINT = "checkpoint.pt"


class TrainingDiverged(GenlabError):
    """A loss became NaN or infinite."""


@dataclass
class TrainResult:
    run_id: str
    steps: int
    images_per_second: float
    precision: str
    device: str
    seed: int = 0
    kept: bool = False  # True: a finished run of these params was on disk and was kept, not retrained


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False


def fingerprint(params: Params, model_name: str, data_hash: str, prepared: dict | None = None,
                seed: int | None = None) -> str:
    """What a checkpoint must match to be resumed: the model's spec, seed, data and train options, and
    what the model prepared from the stage's other inputs (SRGAN: the content features' file digest).
    The model's list of seeds is not part of it: adding a seed leaves the other seeds' runs as they are."""
    spec = params.models[model_name].flat()
    seed = params.seeds_of(model_name)[0] if seed is None else seed
    data = {k: v for k, v in params.data.items() if k != "memory_budget_mb"}  # the loader never changes batches
    # what `auto` resolves to here, not the word: a CPU fp32 checkpoint never resumes as CUDA bf16
    device = resolve_device(params.train["device"])
    keys = {"spec": spec, "seed": seed, "data": data, "data_hash": data_hash,
            "train": {"device": device.type, "precision": resolve_precision(params.train["precision"], device)}}
    keys["best"] = {k: params.train[k] for k in ("best_metric", "best_samples", "best_real")}
    if params.train["nproc"] > 1:  # the same experiment up to rounding, but not the same bytes
        keys["nproc"] = params.train["nproc"]
    if prepared:
        keys["prepared"] = prepared
    return hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()


CHECKPOINT_KEYS = ("fingerprint", "epoch", "model", "optimizers", "shuffle_rng", "torch_rng", "history")


def read_checkpoint(path: Path, model_name: str) -> dict[str, Any] | None:
    """The last epoch's checkpoint, or None to train from scratch: none, or an unreadable one.

    Read onto the CPU whatever the training device: the RNG states must stay CPU ByteTensors (what
    Generator.set_state and torch.cuda.set_rng_state accept), and load_state_dict copies the weights
    and optimizer states onto the model's device.

    A truncated or corrupt checkpoint (a full disk, a bad copy) is only lost progress: training
    from scratch reproduces the same bytes, so it is reported in one line and never resumed from.
    One that carries pickled code is refused (UnsafeWeightsFile): something other than genlab
    wrote it, and the user should look at it before deleting it, not have it silently replaced."""
    if not path.exists():
        return None
    try:
        return load_weights(path, f"delete it to train models.{model_name} from scratch",
                            CHECKPOINT_KEYS, map_location="cpu")
    except UnsafeWeightsFile:
        raise
    except WeightsFileError as err:
        tqdm.write(f"warning: {err.path}: {err.problem}; not resuming from it, "
                   f"training models.{model_name} from scratch", file=sys.stderr)
        return None


@torch.no_grad()
def epoch_grid(model: GenerativeModel, fixture):
    was_training = model.training
    model.eval()
    tiles, nrow = model.grid_images(fixture)
    model.train(was_training)
    return grid_array(tiles.cpu(), nrow=nrow)


def drop_stale_autocast_weights(optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Make every optimizer step clear autocast's cache of low-precision weight copies.

    Inside one `torch.autocast` region each parameter is cast to bf16 once and the copy is reused,
    and an optimizer's in-place step does not invalidate it. A training_step that updates D and
    then scores G through D (every GAN here) would otherwise give G the gradient of the D from
    *before* that step: a simultaneous instead of an alternating update, which at the default
    budgets cost gan, lsgan and dragan most of their classes in bf16. Only called for bf16, so
    fp32 training is byte for byte what it was.
    """
    for optimizer in optimizers.values():
        optimizer.register_step_post_hook(lambda *_: torch.clear_autocast_cache())


def train_model(params: Params, model_name: str, data_path: Path, out_dir: Path, plots_path: Path,
                classifier_path: Path | None = None, *, seed: int | None = None,
                parent_run_id: str | None = None, leave_group: bool = True) -> TrainResult:
    """Train one seed of models.<model_name> into out_dir (its first seed when `seed` is None), as a child
    run of `parent_run_id` when given. A finished run of the same fingerprint already in out_dir is kept.
    Under torchrun the process group is left at the end unless `leave_group` is false (more seeds follow)."""
    ranks = distributed.current_ranks()
    seed = params.seeds_of(model_name)[0] if seed is None else seed
    try:
        return _train(params, model_name, data_path, out_dir, plots_path, classifier_path, ranks, seed, parent_run_id)
    finally:
        if ranks.parallel and leave_group:
            distributed.stop()


def _train(params: Params, model_name: str, data_path: Path, out_dir: Path, plots_path: Path,
           classifier_path: Path | None, ranks: distributed.Ranks, seed: int,
           parent_run_id: str | None) -> TrainResult:
    spec = params.model(model_name)
    device = distributed.start(ranks, resolve_device(params.train["device"]))
    precision = resolve_precision(params.train["precision"], device)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_hash = file_digest(data_path)
    info = read_info(data_path)

    seed_everything(seed)
    data = open_train_data(data_path, limit=params.data["train_limit"], device=device,
                           memory_budget_bytes=params.data["memory_budget_mb"] << 20,
                           shuffle_buffer=params.data["shuffle_buffer"])
    n_images = data.n
    batch = min(spec.batch_size, n_images)
    steps_per_epoch = n_images // batch  # the last partial batch is dropped: BatchNorm needs full batches
    if spec.steps_per_epoch:  # shorter epochs: the first batches of each epoch's fresh permutation
        steps_per_epoch = min(steps_per_epoch, spec.steps_per_epoch)
    if batch % ranks.world:
        raise GenlabError(f"models.{model_name}: a batch of {batch} (the split has {n_images} images) cannot be "
                          f"shared evenly by train.nproc: {ranks.world} processes; raise data.train_limit")

    model = build_model(spec, data.image_shape, len(info["class_names"]), data.input_shape).to(device)
    if ranks.parallel:
        model = distributed.synchronize_batchnorm(model, device)
    used = model.prepare({"classifier": classifier_path, "task": info["task"]})
    optimizers = model.configure_optimizers()
    if precision != "fp32":
        drop_stale_autocast_weights(optimizers)
    if ranks.parallel:
        distributed.average_gradients(optimizers, ranks.world)
    shuffle = torch.Generator(device="cpu").manual_seed(seed)
    grid_fixture = model.grid_fixture(params.train["grid_size"], params.seed, data) if ranks.main else None
    selector, no_best = open_selector(params, classifier_path, data, model, device) if ranks.main else (None, None)

    # -- resume or start -----------------------------------------------------------------
    fp = fingerprint(params, model_name, data_hash, used, seed)
    ckpt_path = out_dir / CHECKPOINT
    start_epoch, history, best = 0, [], Best()
    run = None if ranks.main else TrainingRun(None, None)  # rank 0 alone logs
    ckpt = read_checkpoint(ckpt_path, model_name)
    if ckpt is not None and _finished(ckpt, fp, spec.epochs, out_dir):  # e.g. a seed added beside this one
        if ranks.main:
            if not plots_path.exists():
                write_history_csv(plots_path, ckpt["history"], model.metric_names)
            tqdm.write(f"[{model_name} seed {seed}] up to date: {out_dir} holds this run, kept")
        run_id = TrainingRun.from_dir(out_dir).run_id if (out_dir / "mlflow_run.json").exists() else None
        return TrainResult(run_id, spec.epochs * steps_per_epoch, 0.0, precision, device.type, seed, kept=True)
    if ckpt is not None:
        if ckpt["fingerprint"] == fp and ckpt["epoch"] < spec.epochs:
            model.load_state_dict(ckpt["model"])
            for name, opt in optimizers.items():
                opt.load_state_dict(ckpt["optimizers"][name])
            shuffle.set_state(ckpt["shuffle_rng"])
            torch.set_rng_state(ckpt["torch_rng"])
            if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(ckpt["cuda_rng"])
            start_epoch, history = ckpt["epoch"], ckpt["history"]
            best = Best(**ckpt.get("best", {}))
            if ranks.main:
                try:
                    run = TrainingRun.from_dir(out_dir)
                    run.reopen()
                except FileNotFoundError:
                    run = None
            if ranks.main:
                tqdm.write(f"[{model_name}] resuming from epoch {start_epoch} of {spec.epochs}")
    if run is None:
        flat_params = {**flatten({"model": spec.flat()}), **flatten({"data": params.data}),
                       **flatten({"train": params.train}), "seed": seed,
                       "train.resolved_device": device.type, "train.resolved_precision": precision,
                       "data.loader": "in_memory" if data.in_memory else "streaming",
                       "model.parameters": sum(p.numel() for p in model.parameters()), **used,
                       **({f"train.cuda.{k}": v for k, v in cuda_settings().items()} if device.type == "cuda" else {})}
        family = {"mlflow.parentRunId": parent_run_id} if parent_run_id else {}
        run = TrainingRun.create(
            experiment=info["dataset"], run_name=f"{model_name} seed {seed}", params=flat_params, run_dir=out_dir,
            tags={**provenance_tags(repo_root(), f"train@{model_name}", data_hash, _stage_outputs(out_dir, plots_path)),
                  **family,
                  "genlab.model": model_name, "genlab.model_type": spec.type, "genlab.seed": str(seed),
                  "genlab.precision": precision, "mlflow.note.content": (type(model).__doc__ or "").strip()},
            dataset=dataset_input(info["dataset"], data_path, data_hash, n_images))

    # -- the loop --------------------------------------------------------------------------
    log_every = params.train["log_every"]
    names = model.metric_names
    window = MetricWindow(names, log_every)
    step = start_epoch * steps_per_epoch
    total = spec.epochs * steps_per_epoch
    t0, images_seen, scoring = time.perf_counter(), 0, 0.0  # scoring: seconds spent choosing the best
    saved_epoch = start_epoch  # the epoch the checkpoint on disk holds
    budget = EpochBudget(epochs_csv(plots_path), start_epoch) if ranks.main else None
    model.train()
    distributed.share_random_state(ranks)
    try:
        machine = run.system_metrics()  # CPU, memory (and GPU) of the run, sampled beside the loop
        with tqdm(total=total, initial=step, desc=f"train {model_name}", unit="step", dynamic_ncols=True,
                  disable=not ranks.main) as bar:
            for epoch in range(start_epoch, spec.epochs):
                # closing() stops a streaming loader's prefetch thread however the epoch ends
                with contextlib.closing(data.batches(data.epoch_order(shuffle), batch, steps_per_epoch)) as batches:
                    for images, labels in batches:
                        images, labels = ranks.rows(images), ranks.rows(labels)
                        x = model.to_input(images)
                        with autocast(device, precision):
                            out = model.training_step(x, labels, optimizers, step)
                        full = window.add(out)
                        step += 1
                        images_seen += batch  # the global batch: img/s of all processes together
                        if full or step == total:
                            _flush(window.drain(), names, step, history, run, model_name)
                            rate = images_seen / (time.perf_counter() - t0)
                            bar.set_postfix({"img/s": f"{rate:.0f}", **{k: f"{history[-1][k]:.3f}" for k in names[:4]}})
                        bar.update(1)
                if len(window):
                    _flush(window.drain(), names, step, history, run, model_name)
                if ranks.main:
                    run.log_image(epoch_grid(model, grid_fixture), key="samples", step=epoch + 1)
                    score = None
                    if selector is not None:
                        started = time.perf_counter()
                        best, score = _select(selector, model, data, epoch + 1, step, best, out_dir, run, precision)
                        scoring += time.perf_counter() - started
                        run.log_metrics({"select_seconds": time.perf_counter() - started}, step=step)
                    budget.add(epoch + 1, step, step * batch, time.perf_counter() - t0 - scoring, score)
                    run.flush()
                    save_torch_atomic({
                        "fingerprint": fp, "epoch": epoch + 1, "model": model.state_dict(),
                        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                        "shuffle_rng": shuffle.get_state(), "torch_rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                        "history": history, "best": best.as_dict(),
                    }, ckpt_path)
                saved_epoch = epoch + 1
                distributed.share_random_state(ranks)
        # the loop alone: after_training (e.g. the AE's prior fit) and the best-checkpoint scores excluded
        elapsed = time.perf_counter() - t0 - scoring
        rate = images_seen / elapsed if elapsed > 0 else 0.0
        if ranks.main:
            model.eval()
            model.after_training(data)
            save_model_file(model, precision, out_dir / MODEL_FILE)
            write_history_csv(plots_path, history, names)
            run.log_metrics({"train_images_per_second": rate}, step=step)
            run.log_artifact(out_dir / MODEL_FILE, "model")
            _record_best(run, best, no_best, out_dir)
            run.log_artifact(plots_path, "curves")
            machine.finish()
            run.terminate(ok=True)
    except TrackingLost as err:
        kept = f"{ckpt_path} keeps epoch {saved_epoch}" if saved_epoch else "no epoch had finished"
        raise TrackingLost(f"{err}; models.{model_name} stopped at step {step} of {total} ({kept}). Once the store "
                           f"answers again, `dvc repro` resumes from the checkpoint in the same MLflow run") from err
    except BaseException:
        run.terminate(ok=False)  # the monitor's thread stops at its next sample, seeing the run ended
        raise
    return TrainResult(run.run_id, step, rate, precision, device.type, seed)


def _select(selector, model, data, epoch: int, step: int, best: Best, out_dir: Path, run, precision: str) -> Best:
    """Score this epoch's model; when it beats the best so far, write it as best.pt (before the checkpoint
    that records it, so a resumed run never refers to a best.pt it has not written)."""
    with own_random_state(model.device):
        candidate = scored_copy(model, data)
        score = selector.score(candidate)
    run.log_metrics({"select_classifier_fid": score}, step=step)
    if score < best.score:
        save_model_file(candidate, precision, out_dir / BEST_FILE)
        best = Best(epoch, step, score)
    return best, score


def _stage_outputs(out_dir: Path, plots_path: Path) -> set[str]:
    """The train stage's outputs (a model's directory and curves directory), relative to the repository."""
    root = repo_root().resolve()
    out = set()
    for path in (out_dir.parent, plots_path.parent):
        try:
            out.add(path.resolve().relative_to(root).as_posix())
        except ValueError:  # outside the repository (tests): nothing of the tree to leave out
            pass
    return out


def _finished(ckpt: dict[str, Any], fp: str, epochs: int, out_dir: Path) -> bool:
    """The checkpoint is the end of a run with these params, and its model file was written."""
    return ckpt["fingerprint"] == fp and ckpt["epoch"] >= epochs and (out_dir / MODEL_FILE).exists()


def epochs_csv(curves: Path) -> Path:
    """plots/train/<m>/seed-<s>.csv -> seed-<s>-epochs.csv: the run's budget, epoch by epoch."""
    return curves.with_name(f"{curves.stem}-epochs.csv")


EPOCH_COLUMNS = ("epoch", "step", "images_seen", "train_seconds", "select_classifier_fid")


class EpochBudget:
    """Per epoch: steps, training images seen and training seconds so far (the loop alone: not the
    best-checkpoint scores), with the epoch's selection score. The equal-budget columns of the report
    and its quality-vs-compute figure. Seconds are wall-clock, so they live in this plots file (not
    cached by DVC), never in the model files; a resumed run continues the seconds of the epochs it kept."""

    def __init__(self, path: Path, start_epoch: int):
        self.path, self.rows, self.offset = path, [], 0.0
        if start_epoch and path.exists():
            with open(path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= start_epoch]
            self.offset = float(self.rows[-1]["train_seconds"]) if self.rows else 0.0

    def add(self, epoch: int, step: int, images: int, seconds: float, score: float | None) -> None:
        self.rows.append({"epoch": epoch, "step": step, "images_seen": images,
                          "train_seconds": f"{self.offset + seconds:.3f}",
                          "select_classifier_fid": "" if score is None else f"{score:.6g}"})
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, EPOCH_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)


def _record_best(run, best: Best, no_best: str | None, out_dir: Path) -> None:
    """The best checkpoint in the MLflow run: its file beside model.pt, the epoch and score it was chosen at."""
    if no_best is not None:
        run.set_tags({"genlab.best": f"none: {no_best}"})
        return
    run.set_tags({"genlab.best": f"epoch {best.epoch} (step {best.step}) by classifier-FID vs training images",
                  "genlab.best_epoch": str(best.epoch)})
    run.log_metrics({"best_select_classifier_fid": best.score, "best_epoch": best.epoch}, step=best.step)
    run.log_artifact(out_dir / BEST_FILE, "model")


class MetricWindow:
    """Per-step metric values kept on the training device, `size` steps at a time, and moved to the host
    in one transfer (the loop never waits on the device for a single step's number)."""

    def __init__(self, names, size: int):
        self.names, self.size, self.rows = tuple(names), size, []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, out: dict[str, torch.Tensor]) -> bool:
        """Keep one step's values; True when the window is full."""
        self.rows.append(torch.stack([out[k].float() for k in self.names]))
        return len(self.rows) >= self.size

    def drain(self) -> torch.Tensor:
        """The kept steps as a (steps, metrics) tensor on the host (means over the processes under data
        parallelism), and an empty window."""
        values = distributed.mean_over_ranks(torch.stack(self.rows)).cpu()
        self.rows = []
        return values


def _flush(values, names, step, history, run, model_name):
    """Check a window's values (steps, metrics) on the host, ending at `step`; log them in one batch."""
    first = step - len(values) + 1
    if not torch.isfinite(values).all():
        bad_row, bad_col = (~torch.isfinite(values)).nonzero()[0].tolist()
        raise TrainingDiverged(
            f"models.{model_name}: {names[bad_col]} became {values[bad_row, bad_col].item()} at step "
            f"{first + bad_row}; training stopped. Lower models.{model_name}.lr, or use train.precision: fp32.")
    for offset, row in enumerate(values.tolist()):
        record = {"step": first + offset, **dict(zip(names, row))}
        history.append(record)
        run.log_metrics(dict(zip(names, row)), step=first + offset)


def write_history_csv(path: Path, history: list[dict[str, float]], names) -> None:
    """Per-step curves as CSV, declared as DVC plots (x: step)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["step", *names])
        for record in history:
            writer.writerow([record["step"], *(f"{record[k]:.6g}" for k in names)])
