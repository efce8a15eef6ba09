"""The training loop, one for every model: data on the device, batches sliced, pluggable steps.

`train_model` resolves a plan (genlab.training.plan: the device, precision, epochs, batch, files...)
from the params once, and `train` runs it top to bottom: build, resume, then epoch by epoch the
steps, the metrics, the sample grid, the best checkpoint and the epoch's checkpoint; then the model
file. The training split is loaded once from HDF5 as a uint8 tensor on the training device when it
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
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from genlab.errors import GenlabError

if TYPE_CHECKING:  # the composed params, duck-typed here (genlab.config sits above training)
    from genlab.config import Params
from genlab.io import atomic_path
from genlab.models import GenerativeModel, build_model
from genlab.models.files import BEST_FILE, MODEL_FILE, save_model_file
from genlab.models.samples import Prompts
from genlab.grid import grid_array
from genlab.sampling.grid import grid_prompts, grid_tiles
from genlab.torch_io import UnsafeWeightsFile, WeightsFileError, load_weights, save_torch_atomic
from genlab.tracking import TrainingRun, provenance_tags, repo_root
from genlab.tracking.mlflow_run import GRID_KEY, dataset_input
from genlab.tracking.store import TrackingLost
from genlab.training.data import TrainData, open_train_data
from genlab.training import distributed
from genlab.device import autocast, cuda_settings
from genlab.training.plan import TrainPlan, plan_training
from genlab.training.resources import StageResources
from genlab.training.selection import Best, CheckpointSelector, open_selector, own_random_state, scored_copy


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


def train_model(params: Params, model_name: str, data_path: Path, out_dir: Path, plots_path: Path,
                classifier_path: Path | None = None, *, seed: int | None = None,
                parent_run_id: str | None = None, leave_group: bool = True) -> TrainResult:
    """Train one seed of models.<model_name> into out_dir (its first seed when `seed` is None), as a child
    run of `parent_run_id` when given. A finished run of the same fingerprint already in out_dir is kept.
    Under torchrun the process group is left at the end unless `leave_group` is false (more seeds follow)."""
    ranks = distributed.current_ranks()
    seed = params.seeds_of(model_name)[0] if seed is None else seed
    try:
        return train(plan_training(params, model_name, seed, data_path, out_dir, plots_path, classifier_path,
                                   ranks=ranks, parent_run_id=parent_run_id))
    finally:
        if ranks.parallel and leave_group:
            distributed.stop()


def train(plan: TrainPlan) -> TrainResult:
    """Train one seed as planned. Under torchrun every process runs this; rank 0 alone logs, scores and
    writes files, and every epoch ends with all processes on rank 0's random state."""
    ranks = plan.ranks
    distributed.start(ranks, plan.device)
    trainee = build(plan)
    ckpt = read_checkpoint(plan.checkpoint_path, plan.model_name)
    if ckpt is not None and _finished(ckpt, trainee.fingerprint, plan):  # e.g. a seed added beside this one
        return keep_finished(plan, trainee, ckpt)
    progress = resume(plan, trainee, ckpt)
    run = open_run(plan, trainee, progress)
    window = MetricWindow(trainee.model.metric_names, plan.log_every)
    pace = Pace()
    budget = EpochBudget(epochs_csv(plan.plots_path), progress.epoch) if ranks.main else None
    trainee.model.train()
    distributed.share_random_state(ranks)
    try:
        machine = run.system_metrics()  # CPU, memory (and GPU) of the run, sampled beside the loop
        with tqdm(total=plan.total_steps, initial=progress.step, desc=f"train {plan.model_name}", unit="step",
                  dynamic_ncols=True, disable=not ranks.main) as bar:
            for epoch in range(progress.epoch + 1, plan.epochs + 1):
                train_epoch(plan, trainee, progress, window, run, bar, pace)
                if ranks.main:  # the grid, the score (best.pt when it is the best), then the checkpoint
                    run.log_image(epoch_grid(trainee.model, trainee.grid_prompts, plan.protocol_seed + 1),
                                  key=GRID_KEY, step=epoch)
                    score = select_best(plan, trainee, progress, epoch, run, pace)
                    budget.add(epoch, progress.step, progress.step * plan.batch, pace.seconds(), score)
                    run.flush()
                    save_checkpoint(plan, trainee, progress, epoch)
                progress.epoch = epoch  # what the checkpoint on disk holds
                distributed.share_random_state(ranks)
        rate = pace.rate()  # the loop alone: after_training and the best-checkpoint scores excluded
        if ranks.main:
            write_model(plan, trainee, progress, run, rate)
            machine.finish()
            run.terminate(ok=True)
    except TrackingLost as err:
        raise _stopped(plan, progress, err) from err
    except BaseException:
        run.terminate(ok=False)  # the monitor's thread stops at its next sample, seeing the run ended
        raise
    return TrainResult(run.run_id, progress.step, rate, plan.precision, plan.device.type, plan.seed)


# -- set-up ----------------------------------------------------------------------------------
@dataclass
class Trainee:
    """What a plan builds before its first step: the data on the device, the model, its optimizers, the
    shuffle's generator, the run's fingerprint; on rank 0 the grid's prompts and the best checkpoint's selector."""

    data: TrainData
    model: GenerativeModel
    optimizers: dict[str, torch.optim.Optimizer]
    shuffle: torch.Generator
    prepared: dict[str, Any]  # what the model prepared from the stage's other inputs (logged, fingerprinted)
    fingerprint: str
    grid_prompts: Prompts | None = None
    selector: CheckpointSelector | None = None
    no_best: str | None = None  # why there is no best checkpoint (None: there is one, or not rank 0)


def build(plan: TrainPlan) -> Trainee:
    """Seed, open the data and build the model and its optimizers, in this order: the model's random
    initialization draws what it always drew, so the same plan gives the same bytes."""
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(plan.seed)
    data = open_train_data(plan.data_path, device=plan.device, **plan.loader)
    model = build_model(plan.spec, data.image_shape, plan.num_classes, data.input_shape).to(plan.device)
    if plan.ranks.parallel:
        model = distributed.synchronize_batchnorm(model, plan.device)
    prepared = model.prepare(StageResources(plan.task, plan.selection.classifier_path))
    optimizers = model.configure_optimizers()
    if plan.precision != "fp32":
        drop_stale_autocast_weights(optimizers)
    if plan.ranks.parallel:
        distributed.average_gradients(optimizers, plan.ranks.world)
    shuffle = torch.Generator(device="cpu").manual_seed(plan.seed)
    trainee = Trainee(data, model, optimizers, shuffle, prepared, plan.fingerprint(prepared))
    if plan.ranks.main:
        trainee.grid_prompts = grid_prompts(model, plan.grid_size, data)
        trainee.selector, trainee.no_best = open_selector(plan.selection, data, model, plan.device)
    return trainee


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False


# -- resume or start -------------------------------------------------------------------------
@dataclass
class Progress:
    """How far the run is: the epochs done (what the checkpoint on disk holds), the steps, the curves and the
    best epoch."""

    epoch: int = 0
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: Best = field(default_factory=Best)


def resume(plan: TrainPlan, trainee: Trainee, ckpt: dict[str, Any] | None) -> Progress:
    """The checkpoint's weights, optimizers, random states and progress when it is an unfinished run of
    this plan; a fresh start otherwise (a checkpoint of other params is overwritten at the first epoch's end)."""
    if ckpt is None or ckpt["fingerprint"] != trainee.fingerprint or ckpt["epoch"] >= plan.epochs:
        return Progress()
    trainee.model.load_state_dict(ckpt["model"])
    for name, opt in trainee.optimizers.items():
        opt.load_state_dict(ckpt["optimizers"][name])
    trainee.shuffle.set_state(ckpt["shuffle_rng"])
    torch.set_rng_state(ckpt["torch_rng"])
    if plan.device.type == "cuda" and ckpt.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(ckpt["cuda_rng"])
    return Progress(ckpt["epoch"], ckpt["epoch"] * plan.steps_per_epoch, ckpt["history"], Best(**ckpt.get("best", {})))


def _finished(ckpt: dict[str, Any], fp: str, plan: TrainPlan) -> bool:
    """The checkpoint is the end of a run with these params, and its model file was written."""
    return ckpt["fingerprint"] == fp and ckpt["epoch"] >= plan.epochs and (plan.out_dir / MODEL_FILE).exists()


def keep_finished(plan: TrainPlan, trainee: Trainee, ckpt: dict[str, Any]) -> TrainResult:
    """A finished run of this plan is on disk: keep it (its curves written again if they were lost)."""
    if plan.ranks.main:
        if not plan.plots_path.exists():
            write_history_csv(plan.plots_path, ckpt["history"], trainee.model.metric_names)
        tqdm.write(f"[{plan.model_name} seed {plan.seed}] up to date: {plan.out_dir} holds this run, kept")
    run_id = TrainingRun.from_dir(plan.out_dir).run_id if (plan.out_dir / "mlflow_run.json").exists() else None
    return TrainResult(run_id, plan.total_steps, 0.0, plan.precision, plan.device.type, plan.seed, kept=True)


def open_run(plan: TrainPlan, trainee: Trainee, progress: Progress) -> TrainingRun:
    """The MLflow run to log to: the resumed checkpoint's own run, reopened, or a new one (rank 0 alone logs:
    the other ranks get a run that logs nothing)."""
    if not plan.ranks.main:
        return TrainingRun(None, None)
    if progress.epoch:
        try:
            run = TrainingRun.from_dir(plan.out_dir)
            run.reopen()
        except FileNotFoundError:  # its mlflow_run.json is gone: the resumed run logs to a new one
            run = None
        tqdm.write(f"[{plan.model_name}] resuming from epoch {progress.epoch} of {plan.epochs}")
        if run is not None:
            return run
    model = trainee.model
    params = {**plan.run_params, "data.loader": "in_memory" if trainee.data.in_memory else "streaming",
              "model.parameters": sum(p.numel() for p in model.parameters()), **trainee.prepared,
              **({f"train.cuda.{k}": v for k, v in cuda_settings().items()} if plan.device.type == "cuda" else {})}
    family = {"mlflow.parentRunId": plan.parent_run_id} if plan.parent_run_id else {}
    provenance = provenance_tags(repo_root(), f"train@{plan.model_name}", plan.data_hash,
                                 _stage_outputs(plan.out_dir, plan.plots_path))
    return TrainingRun.create(
        experiment=plan.dataset, run_name=f"{plan.model_name} seed {plan.seed}", params=params, run_dir=plan.out_dir,
        tags={**provenance, **family,
              "genlab.model": plan.model_name, "genlab.model_type": plan.spec.type, "genlab.seed": str(plan.seed),
              "genlab.precision": plan.precision, "mlflow.note.content": (type(model).__doc__ or "").strip()},
        dataset=dataset_input(plan.dataset, plan.data_path, plan.data_hash, plan.n_images))


# -- an epoch --------------------------------------------------------------------------------
class Pace:
    """Images trained and seconds spent by the loop itself (scoring the best checkpoint is not training)."""

    def __init__(self) -> None:
        self.t0, self.images, self.scoring = time.perf_counter(), 0, 0.0

    def so_far(self) -> float:
        """Images a second since the start, shown beside the progress bar."""
        return self.images / (time.perf_counter() - self.t0)

    def seconds(self) -> float:
        return time.perf_counter() - self.t0 - self.scoring

    def rate(self) -> float:
        elapsed = self.seconds()
        return self.images / elapsed if elapsed > 0 else 0.0


def train_epoch(plan: TrainPlan, trainee: Trainee, progress: Progress, window: MetricWindow, run: TrainingRun,
                bar: tqdm, pace: Pace) -> None:
    """One epoch's steps; its metrics checked and logged every `train.log_every` steps and at its end."""
    data, model, names = trainee.data, trainee.model, window.names
    # closing() stops a streaming loader's prefetch thread however the epoch ends
    order = data.epoch_order(trainee.shuffle)
    with contextlib.closing(data.batches(order, plan.batch, plan.steps_per_epoch)) as batches:
        for images, labels in batches:
            images, labels = plan.ranks.rows(images), plan.ranks.rows(labels)
            x = model.to_input(images)
            with autocast(plan.device, plan.precision):
                out = model.training_step(x, labels, trainee.optimizers, progress.step)
            full = window.add(out)
            progress.step += 1
            pace.images += plan.batch  # the global batch: img/s of all processes together
            if full or progress.step == plan.total_steps:
                _flush(window.drain(), names, progress.step, progress.history, run, plan.model_name)
                bar.set_postfix({"img/s": f"{pace.so_far():.0f}",
                                 **{k: f"{progress.history[-1][k]:.3f}" for k in names[:4]}})
            bar.update(1)
    if len(window):
        _flush(window.drain(), names, progress.step, progress.history, run, plan.model_name)


def select_best(plan: TrainPlan, trainee: Trainee, progress: Progress, epoch: int, run: TrainingRun,
                pace: Pace) -> float | None:
    """Score this epoch's model (None: there is no selector); when it beats the best so far, write it as best.pt
    (before the checkpoint that records it, so a resumed run never refers to a best.pt it has not written).
    The seconds it takes are not training's."""
    if trainee.selector is None:
        return None
    started = time.perf_counter()
    with own_random_state(trainee.model.device):
        candidate = scored_copy(trainee.model, trainee.data)
        score = trainee.selector.score(candidate)
    run.log_metrics({"select_classifier_fid": score}, step=progress.step)
    if score < progress.best.score:
        save_model_file(candidate, plan.precision, plan.out_dir / BEST_FILE)
        progress.best = Best(epoch, progress.step, score)
    pace.scoring += time.perf_counter() - started
    run.log_metrics({"select_seconds": time.perf_counter() - started}, step=progress.step)
    return score


CHECKPOINT_KEYS = ("fingerprint", "epoch", "model", "optimizers", "shuffle_rng", "torch_rng", "history")


def save_checkpoint(plan: TrainPlan, trainee: Trainee, progress: Progress, epoch: int) -> None:
    """The state after `epoch`, written atomically: what resume() restores (the RNG states on the CPU)."""
    save_torch_atomic({
        "fingerprint": trainee.fingerprint, "epoch": epoch, "model": trainee.model.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in trainee.optimizers.items()},
        "shuffle_rng": trainee.shuffle.get_state(), "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state() if plan.device.type == "cuda" else None,
        "history": progress.history, "best": progress.best.as_dict(),
    }, plan.checkpoint_path)


def write_model(plan: TrainPlan, trainee: Trainee, progress: Progress, run: TrainingRun, rate: float) -> None:
    """Rank 0 after the last epoch: the model file (after_training applied, e.g. the AE's prior fit), the
    curves, and the run's record of the throughput, the model and the best checkpoint."""
    model = trainee.model
    model.eval()
    model.after_training(trainee.data)
    save_model_file(model, plan.precision, plan.out_dir / MODEL_FILE)
    write_history_csv(plan.plots_path, progress.history, model.metric_names)
    run.log_metrics({"train_images_per_second": rate}, step=progress.step)
    run.log_artifact(plan.out_dir / MODEL_FILE, "model")
    _record_best(run, progress.best, trainee.no_best, plan.out_dir)
    run.log_artifact(plan.plots_path, "curves")


def _stopped(plan: TrainPlan, progress: Progress, err: TrackingLost) -> TrackingLost:
    """The store stopped answering: where training stopped, and how it goes on."""
    kept = f"{plan.checkpoint_path} keeps epoch {progress.epoch}" if progress.epoch else "no epoch had finished"
    return TrackingLost(f"{err}; models.{plan.model_name} stopped at step {progress.step} of {plan.total_steps} "
                        f"({kept}). Once the store answers again, `dvc repro` resumes from the checkpoint in the "
                        f"same MLflow run")


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
def epoch_grid(model: GenerativeModel, prompts: Prompts, seed: int):
    """The epoch's grid: the fixed prompts drawn in eval mode, with the same noise every epoch."""
    was_training = model.training
    model.eval()
    samples = model.sample(prompts, torch.Generator(device="cpu").manual_seed(seed))
    model.train(was_training)
    tiles, nrow = grid_tiles(samples, model.num_classes)
    return grid_array(tiles, nrow=nrow)


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
