"""Params validation: `params.yaml` is read and checked once, here, into typed objects.

Inner code never reads `params.yaml` again. Every error names the key, the bad value and
what is allowed, so a user can fix it without reading the source.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

if TYPE_CHECKING:  # the registries' own schemas, imported where entries are validated
    from genlab.data.tasks import TaskConfig
    from genlab.models.base import ModelSpec

from genlab.schema import REQUIRED, Field, ParamsError, check_section, check_seeds, checked_mapping


# --------------------------------------------------------------------------- sections
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")

DATA_FIELDS = {
    "dataset": Field(str, "fashion-mnist", help="the dataset of models that do not name their own"),
    "train_limit": Field(int, None, positive=True, nullable=True,
                         help="use only the first N training images (null: all)"),
    "memory_budget_mb": Field(int, 4096, minimum=0,
                              help="a training split up to this size is held on the training device; "
                                   "a larger one streams from the HDF5 file (same batches either way)"),
    "shuffle_buffer": Field(int, 65536, positive=True,
                            help="rows shuffled together: a split up to this size gets a full permutation "
                                 "per epoch, a larger one a block shuffle within windows of this many rows"),
}
TRAIN_FIELDS = {
    "device": Field(str, "auto", choices=DEVICES),
    "precision": Field(str, "fp32", choices=PRECISIONS,
                       help="fp32 (IEEE, TF32 off) | bf16 (autocast) | auto: bf16 where the hardware has fast bf16 "
                            "(CUDA, AMX/AVX512-BF16 CPUs), else fp32 (a different experiment on different machines)"),
    "log_every": Field(int, 20, positive=True, help="steps between logged metric points"),
    "grid_size": Field(int, 64, positive=True, help="images in the per-epoch sample grid"),
    "best_metric": Field(str, "classifier_fid", choices=("classifier_fid", "none"),
                         help="the score taken at every epoch's end to keep the best checkpoint (best.pt) beside "
                              "the last (model.pt); none: keep the last only"),
    "best_samples": Field(int, 250, positive=True, help="generated images per best-checkpoint score"),
    "best_real": Field(int, 1000, positive=True,
                       help="the first N *training* images the best-checkpoint score compares them with"),
    "nproc": Field(int, 1, positive=True,
                   help="processes of data-parallel training under torchrun (one per GPU on CUDA; gloo on CPU); "
                        "each model's batch_size is the global batch, split evenly between them"),
}
SAMPLE_FIELDS = {
    "num_samples": Field(int, 2000, positive=True),
    "batch_size": Field(int, 500, positive=True),
    "grid_size": Field(int, 100, positive=True),
    "checkpoint": Field(str, "last", choices=("last", "best"),
                        help="which checkpoint the evaluate stage draws from: the last epoch's (model.pt) or the "
                             "best by train.best_metric (best.pt)"),
}
EVAL_FIELDS = {
    "num_real": Field(int, 2000, positive=True, help="real test images for the cached Inception statistics"),
    "num_fake": Field(int, 2000, positive=True,
                      help="samples scored in Inception space (the first N of each samples file; at most "
                           "sample.num_samples). The classifier-space metrics take every sample"),
    "inception_seeds": Field(int, 1, positive=True, nullable=True,
                             help="Inception metrics for the first N training seeds of each model (the cross-check "
                                  "beside the rank key); null: every seed"),
    "reference_subsets": Field(int, 5, positive=True,
                               help="disjoint subsets of real training images the reference row is scored on, "
                                    "each of sample.num_samples images: the spread of the floor"),
    "fid_inf": Field(bool, False, help="FID-infinity (Chong & Forsyth 2020: FID extrapolated to N -> infinity) on "
                                       "the first seed of each model; needs thousands of samples"),
    "batch_size": Field(int, 50, positive=True),
    "precision": Field(str, "fp32", choices=PRECISIONS,
                       help="Inception features: fp32 is the standard protocol; bf16 is a labelled quick look"),
    "device": Field(str, "auto", choices=DEVICES),
    "kid_subset_size": Field(int, 1000, positive=True),
    "runtime": Field(str, "auto", choices=("auto", "torch", "onnxruntime"),
                     help="what runs the Inception graph; auto: onnxruntime for fp32 on CPU, torch otherwise"),
    "metrics": Field(list, None, nullable=True, item=str,
                     help="the registered metrics to compute (genlab.metrics.registry; checked by the evaluating "
                          "stages); null: every metric that applies to the model"),
    "inception_weights": Field(str, None, nullable=True,
                               help="torch-fidelity's full Inception weights (.pth) for the Inception Score; "
                                    "null: look in torch's hub cache"),
}

REPORT_FIELDS = {
    "rank_by": Field(str, "classifier_kid",
                     help="the metric number the leaderboard ranks by (lower is better), mean over training "
                          "seeds; a registered metric's number computed for every section"),
    "tie_probability": Field(float, 0.75, minimum=0.5, maximum=1.0,
                             help="a model ranks above another only when it beats it in at least this share of "
                                  "seed pairs (and by more than the reference row's spread)"),
    "bootstrap": Field(int, 1000, positive=True, help="bootstrap resamples over seeds behind each rank interval"),
}

EVALUATOR_FIELDS = {
    "epochs": Field(int, 3, positive=True, help="epochs of the dataset classifier behind classifier-IS/FID"),
    "batch_size": Field(int, 128, positive=True),
    "lr": Field(float, 1e-3, positive=True),
    "train_limit": Field(int, None, positive=True, nullable=True, help="train on the first N images only"),
    "memorization_train": Field(int, 10000, positive=True, nullable=True,
                                help="the first N training images the memorization check measures samples' and "
                                     "test images' distances to (null: the whole split)"),
    "min_accuracy": Field(float, 0.85, minimum=0.0, maximum=1.0,
                          help="below this test accuracy the classifier view is flagged as not to be trusted"),
}


CHECKSUM_PREFIXES = ("md5:", "sha256:")


@dataclass(frozen=True)
class DatasetConfig:
    """One entry of `datasets:`: how the dataset is obtained and packed (registry defaults filled in)."""

    name: str
    preprocessing: Any                   # genlab.data.sources.Preprocessing
    source: str | None = None            # a directory or http(s) base URL tried before everything else
    checksums: Mapping[str, str] | None = None   # role -> "md5:<hex>" / "sha256:<hex>", replacing the registry's

    @property
    def image_shape(self) -> tuple[int, int, int]:
        from genlab.data.sources import DATASETS

        side = self.preprocessing.side
        return DATASETS[self.name].channels, side, side

    @property
    def num_classes(self) -> int:
        from genlab.data.sources import DATASETS

        return DATASETS[self.name].num_classes


DATASET_SECTIONS = ("download", "pack")


def dataset_fields(name: str) -> dict[str, dict[str, Field]]:
    """The keys of `datasets.<name>.download` and `.pack`, with that dataset's registry values as defaults.

    Two sections, so that each stage depends on its own: a new crop re-packs without re-downloading."""
    from genlab.data.sources import DATASETS, RESAMPLE_FILTERS

    source = DATASETS[name]
    download = {
        "source": Field(str, None, nullable=True,
                        help="a directory or http(s) base URL holding the raw files, tried first"),
        "checksums": Field(dict, None, nullable=True,
                           help="role -> 'md5:<hex>' or 'sha256:<hex>' replacing the registry's checksum"),
    }
    pack = {
        "side": Field(int, source.side, minimum=8, maximum=1024, help="side of the packed square images"),
        "crop": Field(int, source.crop, positive=True, nullable=True,
                      help="centre crop (pixels) before resizing; null: the whole image"),
        "resample": Field(str, "bilinear", choices=RESAMPLE_FILTERS, help="PIL filter of the resize"),
    }
    if source.test_fraction is not None:  # only datasets without an official test split
        pack["test_fraction"] = Field(float, source.test_fraction, positive=True, below=1.0,
                                      help="share of identities held out as the test split")
    return {"download": download, "pack": pack}


def _dataset_config(name: str, raw: Any) -> DatasetConfig:
    from genlab.data.sources import DATASETS, Preprocessing

    prefix = f"datasets.{name}"
    if name not in DATASETS:
        raise ParamsError(f"{prefix}: unknown dataset {name!r}; allowed values: {', '.join(sorted(DATASETS))}")
    raw = checked_mapping(prefix, raw, DATASET_SECTIONS, "a mapping with `download:` and `pack:` sections")
    fields = dataset_fields(name)
    download = check_section(f"{prefix}.download", raw.get("download"), fields["download"])
    pack = check_section(f"{prefix}.pack", raw.get("pack"), fields["pack"])
    checksums = download["checksums"]
    for role, value in (checksums or {}).items():
        if role not in DATASETS[name].files:
            raise ParamsError(f"{prefix}.download.checksums.{role}: unknown file role; allowed: "
                              f"{', '.join(DATASETS[name].files)}")
        if not value.startswith(CHECKSUM_PREFIXES):
            raise ParamsError(f"{prefix}.download.checksums.{role}: got {value!r}; "
                              f"expected 'md5:<hex>' or 'sha256:<hex>'")
    prep = Preprocessing(side=pack["side"], crop=pack["crop"], resample=pack["resample"],
                         test_fraction=pack.get("test_fraction"))
    return DatasetConfig(name=name, preprocessing=prep, source=download["source"], checksums=checksums)


TASK_COMMON = ("dataset", "kind")


def _task_config(name: str, raw: Any, datasets: Mapping[str, DatasetConfig]) -> TaskConfig:
    from genlab.data.tasks import TASK_KINDS, TaskConfig

    prefix = f"tasks.{name}"
    if name in datasets:
        raise ParamsError(f"{prefix}: a task may not take the name of a dataset under `datasets:`; rename it")
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{prefix}: got {raw!r}; expected a mapping with `dataset` and `kind`")
    kind = raw.get("kind")
    if kind not in TASK_KINDS:
        raise ParamsError(f"{prefix}.kind: got {kind!r}; allowed values: {', '.join(TASK_KINDS)}")
    spec = TASK_KINDS[kind]
    fields = {"dataset": Field(str, REQUIRED), "kind": Field(str, REQUIRED, choices=tuple(TASK_KINDS)),
              **spec.fields}
    values = check_section(prefix, raw, fields)
    if values["dataset"] not in datasets:
        raise ParamsError(f"{prefix}.dataset: got {values['dataset']!r}; allowed values (the datasets under "
                          f"`datasets:`): {', '.join(datasets)}")
    data = datasets[values["dataset"]]
    settings = {k: v for k, v in values.items() if k not in TASK_COMMON}
    if spec.uses_dataset_inputs:
        from genlab.data.sources import DATASETS

        paired = DATASETS[data.name].paired
        if paired is None:
            own = ", ".join(n for n, d in DATASETS.items() if d.paired is not None)
            raise ParamsError(f"{prefix}.dataset: got {data.name!r}, which has no pairs or second domain of its own; "
                              f"kind {kind} needs one of: {own}")
        settings["paired"] = paired
    problem = spec.problem(settings, data.image_shape)
    if problem:
        key = next(iter(spec.fields), "kind")
        raise ParamsError(f"{prefix}.{key}: {problem}")
    if spec.needs_labels and data.num_classes < 1:
        raise ParamsError(f"{prefix}.kind: {kind} keeps the inputs' class labels and dataset {data.name} has none; "
                          f"use a labelled dataset")
    return TaskConfig(name=name, dataset=data.name, kind=kind, settings=settings, paired=spec.paired(settings),
                      input_shape=spec.input_shape(settings, data.image_shape),
                      image_shape=spec.target_shape(settings, data.image_shape),
                      num_classes=data.num_classes, source_labels=spec.source_labels and data.num_classes > 0)


COMMON_MODEL_FIELDS = {
    "type": Field(str, REQUIRED),
    "dataset": Field(str, None, nullable=True, help="one of the datasets under `datasets:` (null: data.dataset)"),
    "epochs": Field(int, 1, positive=True),
    "batch_size": Field(int, 64, positive=True),
    "lr": Field(float, 2e-4, positive=True),
    "steps_per_epoch": Field(int, None, positive=True, nullable=True,
                             help="batches per epoch (null: one full pass over the training data)"),
    "seeds": Field(list, None, nullable=True, item=int,
                   help="this model's training seeds, replacing the top-level `seeds` (each seed is one trained "
                        "model and MLflow run)"),
}


@dataclass(frozen=True)
class Params:
    seed: int
    data: Mapping[str, Any]
    train: Mapping[str, Any]
    sample: Mapping[str, Any]
    eval: Mapping[str, Any]
    evaluator: Mapping[str, Any]
    models: Mapping[str, ModelSpec]
    datasets: Mapping[str, DatasetConfig] = field(default_factory=dict)
    tasks: Mapping[str, TaskConfig] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    report: Mapping[str, Any] = field(default_factory=lambda: check_section("report", None, REPORT_FIELDS))

    def seeds_of(self, name: str) -> tuple[int, ...]:
        """The training seeds of models.<name>: its own `seeds`, else the top-level list."""
        return self.model(name).seeds or self.seeds

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise ParamsError(f"models.{name}: not in params.yaml; defined models: {', '.join(self.models)}")
        return self.models[name]

    def task(self, name: str) -> TaskConfig:
        if name not in self.tasks:
            raise ParamsError(f"tasks.{name}: not in params.yaml; listed tasks: {', '.join(self.tasks) or 'none'}")
        return self.tasks[name]

    def dataset(self, name: str) -> DatasetConfig:
        if name not in self.datasets:
            raise ParamsError(f"datasets.{name}: not in params.yaml; listed datasets: {', '.join(self.datasets)}")
        return self.datasets[name]


def _model_spec(name: str, raw: Any, datasets: Mapping[str, DatasetConfig], default_dataset: str,
                tasks: Mapping[str, TaskConfig]) -> ModelSpec:
    # The registry, imported only when model entries are validated: the data-side stages parse
    # params with models=False and so neither run nor depend on the model code (see dvc.yaml).
    from genlab.models import MODEL_TYPES
    from genlab.models.base import ModelSpec

    prefix = f"models.{name}"
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{prefix}: got {raw!r}; expected a mapping with at least `type`")
    raw = dict(raw)
    raw.setdefault("type", name)
    kind = raw["type"]
    if not isinstance(kind, str) or kind not in MODEL_TYPES:
        raise ParamsError(f"{prefix}.type: got {kind!r}; allowed values: {', '.join(sorted(MODEL_TYPES))}")
    cls = MODEL_TYPES[kind]
    fields = dict(COMMON_MODEL_FIELDS)
    for key, default in cls.defaults.items():
        if key in fields:  # a type may change a common default (e.g. WGAN's lr)
            base = fields[key]
            fields[key] = dataclasses.replace(base, default=default)
    fields.update(cls.hparam_fields)
    own_seeds = raw.pop("seeds", None)  # validated by check_seeds (non-empty, distinct), listed as allowed
    values = check_section(prefix, raw, fields)
    common = {k: values.pop(k) for k in COMMON_MODEL_FIELDS}
    common["seeds"] = None if own_seeds is None else check_seeds(f"{prefix}.seeds", own_seeds)
    common["dataset"] = common["dataset"] or default_dataset
    if cls.trains_on == "task":  # image-to-image types train on a task, the others on a dataset
        if common["dataset"] not in tasks:
            raise ParamsError(f"{prefix}.dataset: got {common['dataset']!r}; type {kind} translates images, so it "
                              f"trains on a task under `tasks:`; allowed values: {', '.join(tasks) or 'none listed'}")
        task = tasks[common["dataset"]]
        reason = cls.check_task(values, task)
        if reason:
            raise ParamsError(f"{prefix}.dataset: type {kind} cannot train on task {task.name} "
                              f"({task.description}): {reason}")
        return ModelSpec(name=name, hparams=values, **common)
    if common["dataset"] not in datasets:
        also = f"; {', '.join(tasks)} are tasks, for image-to-image types" if tasks else ""
        raise ParamsError(f"{prefix}.dataset: got {common['dataset']!r}; allowed values (the datasets under "
                          f"`datasets:`): {', '.join(datasets)}{also}")
    data = datasets[common["dataset"]]
    reason = cls.check_data(values, data.image_shape, data.num_classes)
    if reason:
        shape = "x".join(map(str, data.image_shape))
        raise ParamsError(f"{prefix}: type {kind} cannot train on dataset {data.name} ({shape}): {reason}")
    return ModelSpec(name=name, hparams=values, **common)


BUDGET_KEYS = ("dataset", "epochs", "steps_per_epoch", "batch_size", "seeds")  # the budget, not the method


def departures(spec: ModelSpec) -> list[str]:
    """The settings of a model entry that depart from its type's defaults (the paper's values), e.g.
    ["lr 0.001 (paper 0.0002)", "width 16 (paper 64)"]; the budget keys (epochs, steps, batch) are not
    counted: the leaderboard states the budget in its own columns."""
    from genlab.models import MODEL_TYPES

    cls = MODEL_TYPES[spec.type]
    paper = {"lr": cls.defaults.get("lr", COMMON_MODEL_FIELDS["lr"].default),
             **{k: f.default for k, f in cls.hparam_fields.items()}}
    mine = {"lr": spec.lr, **spec.hparams}
    return [f"{key} {mine[key]} (paper {paper[key]})" for key in paper
            if key in mine and key not in BUDGET_KEYS and mine[key] != paper[key]]


def parse_params(raw: Any, *, models: bool = True) -> Params:
    """Validate a whole params mapping. models=False checks the model entries' names only, for the
    stages that prepare data: they need no model code, so they neither import nor depend on it."""
    from genlab.data.sources import DATASETS

    if not isinstance(raw, Mapping):
        raise ParamsError(f"params.yaml: expected a mapping at the top level, got {type(raw).__name__}")
    allowed = {"seed", "seeds", "data", "datasets", "tasks", "train", "sample", "eval", "evaluator", "models", "report"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ParamsError(f"{unknown[0]}: unknown top-level key; allowed keys: {', '.join(sorted(allowed))}")
    seed = Field(int, 0, minimum=0).check("seed", raw.get("seed", 0))
    seeds = check_seeds("seeds", raw["seeds"]) if "seeds" in raw else (seed,)
    data = check_section("data", raw.get("data"), DATA_FIELDS)
    if data["dataset"] not in DATASETS:
        raise ParamsError(f"data.dataset: got {data['dataset']!r}; allowed values: {', '.join(sorted(DATASETS))}")
    datasets = _datasets(raw.get("datasets", {data["dataset"]: {}}), data["dataset"])
    tasks_raw = checked_mapping("tasks", raw.get("tasks"), raw.get("tasks") or {}, "a mapping of task names to settings")
    tasks = {}
    for name, entry in tasks_raw.items():
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ParamsError(f"tasks.{name}: task names may use letters, digits, '_' and '-' only")
        tasks[name] = _task_config(name, entry, datasets)
    models_raw = raw.get("models")
    if not isinstance(models_raw, Mapping) or not models_raw:
        raise ParamsError("models: expected a mapping of model names to their settings, e.g. `models: {dcgan: {type: dcgan}}`")
    entries = {}
    for name, spec in models_raw.items():
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ParamsError(f"models.{name}: model names may use letters, digits, '_' and '-' only")
        if models:
            entries[name] = _model_spec(name, spec, datasets, data["dataset"], tasks)
    train = check_section("train", raw.get("train"), TRAIN_FIELDS)
    sample = check_section("sample", raw.get("sample"), SAMPLE_FIELDS)
    _check_training_plan(train, sample, entries)
    evaluation = check_section("eval", raw.get("eval"), EVAL_FIELDS)
    if evaluation["num_fake"] > sample["num_samples"]:
        raise ParamsError(f"eval.num_fake: got {evaluation['num_fake']}, more than the {sample['num_samples']} "
                          f"samples each model draws (sample.num_samples); use at most {sample['num_samples']}")
    report = check_section("report", raw.get("report"), REPORT_FIELDS)
    if models:
        _check_rank_key(report["rank_by"], evaluation["metrics"], entries, tasks)
    return Params(
        seed=seed,
        seeds=seeds,
        report=report,
        data=data,
        train=train,
        sample=sample,
        eval=evaluation,
        evaluator=check_section("evaluator", raw.get("evaluator"), EVALUATOR_FIELDS),
        models=entries,
        datasets=datasets,
        tasks=tasks,
    )


def _check_training_plan(train: Mapping[str, Any], sample: Mapping[str, Any], models: Mapping[str, ModelSpec]) -> None:
    """What the sections say together: a best checkpoint to sample from exists only where one is
    selected, and data-parallel training splits every model's batch evenly between its processes."""
    if sample["checkpoint"] == "best" and train["best_metric"] == "none":
        raise ParamsError("sample.checkpoint: got 'best' but train.best_metric is 'none', so no best checkpoint is "
                          "kept; set train.best_metric: classifier_fid, or sample.checkpoint: last")
    nproc = train["nproc"]
    for name, spec in models.items():
        if spec.batch_size % nproc:
            raise ParamsError(f"models.{name}.batch_size: got {spec.batch_size}, which train.nproc: {nproc} processes "
                              f"cannot share evenly; use a multiple of {nproc}")


def _check_rank_key(rank_by: str, metrics: tuple[str, ...] | None, models: Mapping[str, ModelSpec],
                    tasks: Mapping[str, TaskConfig]) -> None:
    """report.rank_by: a number of a registered metric that is computed for every section's models (a
    dataset's noise-to-image models; a task's translations, paired where the task is)."""
    # Imported only when model entries are validated (as the model registry is, in _model_spec): the
    # data-side stages parse params with models=False and neither run nor depend on the metric code.
    from genlab.metrics import registry
    sections: dict[str, frozenset[str]] = {}
    for spec in models.values():
        task = tasks.get(spec.dataset)
        sections[spec.dataset] = (frozenset({registry.NOISE}) if task is None else
                                  frozenset({registry.TRANSLATION, *([registry.PAIRED] if task.paired else [])}))
    problem = registry.rank_key_problem(rank_by, metrics, sections)
    if problem:
        raise ParamsError(f"report.rank_by: got {rank_by!r}; {problem}")


def _datasets(raw: Any, default: str) -> dict[str, DatasetConfig]:
    """`datasets:` (dataset name -> its download/pack settings); data.dataset must be one of them."""
    if not isinstance(raw, Mapping) or not raw:
        raise ParamsError(f"datasets: got {raw!r}; expected a mapping of dataset names to their settings, "
                          f"e.g. `datasets: {{{default}: {{download: {{}}, pack: {{}}}}}}`")
    datasets = {str(name): _dataset_config(str(name), entry) for name, entry in raw.items()}
    if default not in datasets:
        raise ParamsError(f"data.dataset: got {default!r}, which is not listed under `datasets:` "
                          f"({', '.join(datasets)}); add `{default}: {{download: {{}}, pack: {{}}}}` there "
                          f"or pick a listed one")
    return datasets


def load_params(path: str | Path = "params.yaml", *, models: bool = True) -> Params:
    """Read and validate params.yaml (see parse_params for `models`)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found; run the stage from the repository root")
    with open(path) as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return parse_params(raw, models=models)
