"""The evaluate stages: real-data features cached once per protocol, and one metrics file per model.

A model's record is every registered metric (genlab.metrics.registry, defined in genlab.metrics.builtin)
that applies to its kind, computed on an EvalContext; metric_numbers and mlflow_metrics (the DVC
metrics file's and MLflow's numbers) come from the registry too."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from genlab.data.hdf5 import read_info, read_inputs, read_split
from genlab.errors import GenlabError
from genlab.metrics.features import (extract_features, feature_protocol, load_features, load_real_features,
                                     load_statistics, real_statistics, save_features)
from genlab.metrics.fid import compute_fid_kid
from genlab.metrics.inception import INCEPTION_EXTRACTOR, eval_settings
from genlab.metrics.registry import ADAPTATION, CYCLE, NOISE, PAIRED, TRANSLATION, applicable
from genlab.metrics.registry import metric_numbers, mlflow_metrics  # noqa: F401  (audit and stages import them here)
from genlab.device import resolve_device

REAL_SPLIT = "test"


def compute_real_features(data_path: Path, out_path: Path, cfg: Mapping[str, Any]) -> dict:
    """Inception features of the first `num_real` test images, saved with their protocol."""
    info = read_info(data_path)
    images, _ = read_split(data_path, REAL_SPLIT, limit=cfg["num_real"])
    device, precision, runtime = eval_settings(cfg)
    feats = extract_features(images, batch_size=cfg["batch_size"], device=device, precision=precision,
                             runtime=runtime, desc=f"features {info['dataset']}/{REAL_SPLIT}")
    protocol = feature_protocol(n=len(feats), dataset=info["dataset"], split=REAL_SPLIT, precision=precision,
                                runtime=runtime)
    save_features(out_path, feats, protocol)
    return protocol


@dataclass(frozen=True)
class EvaluatorFiles:
    """What the evaluator stage wrote for a dataset: its classifier, that classifier's test features, and
    (datasets, not tasks) its features of the training split, for the memorization check."""

    classifier: Path
    features: Path
    train_features: Path | None = None


def train_evaluator(data_path: Path, weights_path: Path, features_path: Path, cfg: Mapping[str, Any],
                    seed: int, train_features_path: Path | None = None, device: str = "auto") -> dict:
    """Train the dataset classifier (on eval.device, recorded) and cache its penultimate features of the
    whole test split.

    An unlabelled dataset (faces) has no classifier: both files still exist, saying why, so every
    model's evaluate stage records a null classifier view with that reason."""
    import torch

    from genlab.metrics.classifier import (CLASSIFIER_EXTRACTOR, PENULTIMATE_DIM, load_classifier, predict,
                                           save_no_classifier, train_classifier)

    info = read_info(data_path)
    protocol = {"extractor": CLASSIFIER_EXTRACTOR, "precision": "fp32", "dataset": info["dataset"],
                "split": REAL_SPLIT}
    if not info["labelled"]:
        reason = (f"dataset {info['dataset']} has no class labels, so no classifier is trained; "
                  f"classifier-IS/FID, class coverage and conditional accuracy are null")
        save_no_classifier(weights_path, reason)
        for path, split in ((features_path, REAL_SPLIT), (train_features_path, "train")):
            if path is not None:
                save_features(path, np.zeros((0, PENULTIMATE_DIM), np.float32),
                              {**protocol, "split": split, "N": 0, "reason": reason})
        return {"dataset": info["dataset"], "test_accuracy": None, "trusted": False, "reason": reason}
    resolved = resolve_device(device)
    record = train_classifier(data_path, weights_path, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                              lr=cfg["lr"], seed=seed, device=resolved,
                              limit=cfg["train_limit"], min_accuracy=cfg["min_accuracy"])
    model, _ = load_classifier(weights_path)
    images, _ = read_split(data_path, REAL_SPLIT)
    test = predict(model, torch.from_numpy(images))[0].numpy()
    save_features(features_path, test, {**protocol, "N": int(len(test))}, real_statistics(test))
    if train_features_path is not None:  # the memorization check's training side, its reference fitted for `seed`
        from genlab.metrics.neighbours import copying_reference, copying_statistics

        images, _ = read_split(data_path, "train", limit=cfg.get("memorization_train"))
        train = predict(model, torch.from_numpy(images))[0].numpy()
        save_features(train_features_path, train, {**protocol, "split": "train", "N": int(len(train))},
                      copying_statistics(copying_reference(train, test, seed=seed), seed))
    return {"dataset": info["dataset"], **record, "device": resolved.type}


def evaluate_reference(data_path: Path, n: int, real_features_path: Path, evaluator: EvaluatorFiles,
                       cfg: Mapping[str, Any], seed: int) -> dict[int, dict]:
    """Real against real: disjoint sets of n *train* images (eval.reference_subsets of them: images
    [k n, (k + 1) n)), with their true labels, each scored like one seed's samples against the test split.
    The floor a model is read against (same N, same protocol), and its spread: how much the score of
    real data moves between equally sized samples. Inception metrics for the first subset only (the
    first n train images, as a model's first seed); the classifier-space metrics for every subset."""
    k = cfg.get("reference_subsets", 1)
    images, labels = read_split(data_path, "train", limit=n * k)
    records = {}
    for subset in range(min(k, len(images) // n) or 1):
        rows = slice(subset * n, (subset + 1) * n)
        ctx = EvalContext(images[rows], real_features_path, evaluator, cfg, seed,
                          labels=None if labels is None else labels[rows], seed_position=subset,
                          inception_reason=None if subset == 0 else
                          "the Inception cross-check of the reference is computed on its first subset only")
        records[subset] = evaluate(ctx, cfg.get("metrics"))
    return records


def evaluate_identity(data_path: Path, n: int, real_features_path: Path, evaluator: EvaluatorFiles,
                      cfg: Mapping[str, Any], evaluator_cfg: Mapping[str, Any], seed: int) -> dict:
    """A task's identity baseline: output = input for the first n test inputs (nearest-upsampled to the
    targets' size, grey replicated to their channels), scored like a translation model's outputs; for a
    domain-adaptation task (inputs with labels) also the task accuracy of a source-only classifier."""
    from genlab.metrics.classifier import source_only_predictions
    from genlab.data.tasks import to_target_geometry

    info = read_info(data_path)
    targets, _ = read_split(data_path, REAL_SPLIT, limit=n)
    inputs, input_labels = read_inputs(data_path, REAL_SPLIT, limit=n)
    geometry = f"{info['height']}x{info['width']}, {info['channels']} channel(s)"
    ctx = EvalContext(to_target_geometry(inputs, targets.shape[1:]), real_features_path, evaluator, cfg, seed,
                      kinds=frozenset({TRANSLATION, *([PAIRED] if info["paired"] else [])}), inputs=inputs,
                      targets=targets,
                      outputs=f"identity: the first n {REAL_SPLIT} inputs, nearest-upsampled to {geometry}")
    if input_labels is not None:
        ctx.kinds |= {ADAPTATION}
        ctx.task_predictions, ctx.task_labels, ctx.task_classifier = source_only_predictions(
            data_path, epochs=evaluator_cfg["epochs"], batch_size=evaluator_cfg["batch_size"], lr=evaluator_cfg["lr"],
            seed=seed, device=resolve_device(cfg["device"]), limit=evaluator_cfg["train_limit"])
    return evaluate(ctx, cfg.get("metrics"))


@dataclass
class EvalContext:
    """What a registered metric reads (genlab.metrics.registry): the samples (a model's outputs), the real
    features and evaluator files they are scored against, eval params and seed, the kinds of model,
    and for translation models the inputs, targets, reconstructions and task predictions when present.
    Inception features and the classifier view are computed once, by the first metric that needs them."""

    samples: np.ndarray
    real_features: Path
    evaluator: EvaluatorFiles
    cfg: Mapping[str, Any]
    seed: int
    kinds: frozenset[str] = frozenset({NOISE})
    labels: np.ndarray | None = None
    inputs: np.ndarray | None = None
    targets: np.ndarray | None = None
    reconstructions: np.ndarray | None = None
    task_predictions: np.ndarray | None = None
    task_labels: np.ndarray | None = None
    task_classifier: str = "the model's own task classifier, on every test target image"
    outputs: str = "the model's outputs for the first n test inputs"
    seed_position: int = 0            # the training seed's place in its model's list (0: the first)
    inception_reason: str | None = None  # why the Inception metrics are skipped for these samples

    @property
    def copying_reference(self):
        """The memorization check's training side (genlab.metrics.neighbours.CopyingReference), built once
        per process for the evaluator's files; None when the evaluator saved no training features."""
        return _copying_reference(self.evaluator.train_features, self.evaluator.features, self.seed)

    @functools.cached_property
    def inception(self) -> tuple[np.ndarray, np.ndarray, dict]:
        """(sample features, real features, the protocol every Inception-feature metric records)."""
        real, real_protocol = load_features(self.real_features)
        device, precision, runtime = eval_settings(self.cfg, real_protocol)
        for key, value in (("precision", precision), ("runtime", runtime)):
            if value != real_protocol.get(key):
                raise ValueError(f"eval.{key} resolves to {value} but {self.real_features} was computed with "
                                 f"{real_protocol.get(key)}; re-run its stage (dvc repro) so both match")
        fake = extract_features(self.samples[:self.cfg.get("num_fake")], batch_size=self.cfg["batch_size"], device=device, precision=precision,
                                runtime=runtime, desc="features samples")
        protocol = {
            "extractor": INCEPTION_EXTRACTOR,
            "weights_sha256": real_protocol.get("weights_sha256"),
            "compute_dtype": precision,
            "runtime": runtime,
            "n_fake": int(len(fake)),
            "n_real": int(real_protocol["N"]),
            "real_split": f"{real_protocol['dataset']}/{real_protocol['split']}",
        }
        return fake, real, protocol

    @functools.cached_property
    def fid_kid(self) -> dict:
        fake, real, _ = self.inception
        return compute_fid_kid(fake, real, kid_subset_size=self.cfg["kid_subset_size"], seed=self.seed)

    @functools.cached_property
    def classifier(self) -> dict:
        """The classifier view (classifier-IS/FID/KID, class histogram, conditional accuracy) of every sample,
        against the whole test split."""
        from genlab.metrics.classifier import classifier_view

        real_penultimate, _ = load_real_features(self.evaluator.features)
        return classifier_view(self.samples, self.labels, self.evaluator.classifier, real_penultimate, self.seed)

    @property
    def classifier_fid_reason(self) -> str | None:
        return self.classifier["classifier_fid"].get("reason")

    @property
    def classifier_features(self) -> tuple[np.ndarray, np.ndarray, dict] | None:
        """(sample features, test-split features, protocol) in the classifier's space; None without a classifier."""
        view = self.classifier
        if view.get("features") is None:
            return None
        real, _ = load_real_features(self.evaluator.features)
        entry = view["classifier_fid"]
        protocol = {k: entry[k] for k in ("extractor", "n_fake", "n_real", "classifier_accuracy", "trusted")}
        return view["features"], real, protocol


@functools.lru_cache(maxsize=2)
def _copying_reference(train_path: Path, test_path: Path, seed: int):
    from genlab.metrics.neighbours import copying_reference, stored_copying_reference

    train, _ = load_features(train_path)
    test, _ = load_features(test_path)
    if not (len(train) and len(test)):
        return None
    return (stored_copying_reference(train, len(test), load_statistics(train_path), seed)
            or copying_reference(train, test, seed=seed))


def evaluate(ctx: EvalContext, names: Iterable[str] | None = None) -> dict:
    """The record entries of the registered metrics that apply to the context's kinds of model (of
    `names` only, when given), in registration order; an Inception-space metric is null with the reason
    where ctx.inception_reason says these samples get none."""
    return {metric.name: ({"reason": ctx.inception_reason} if metric.space == "inception" and ctx.inception_reason
                          else metric.compute(ctx))
            for metric in applicable(ctx.kinds, names)}


def evaluate_samples(samples: np.ndarray, labels: np.ndarray | None, real_features_path: Path,
                     evaluator: EvaluatorFiles, cfg: Mapping[str, Any], seed: int) -> dict:
    """A noise-to-image model's record: every applicable metric of uint8 samples against cached real
    features (eval.metrics, when set, picks some); every value carries its protocol."""
    ctx = EvalContext(samples, real_features_path, evaluator, cfg, seed, labels=labels)
    return evaluate(ctx, cfg.get("metrics"))


class SamplesFileError(GenlabError):
    """A model's samples file that is missing or damaged: sample again."""


SAMPLE_ARRAYS = ("images", "labels", "inputs", "targets", "reconstructions", "task_predictions", "task_labels")


def samples_context(path: Path, real_features_path: Path, evaluator: EvaluatorFiles, cfg: Mapping[str, Any],
                    seed: int) -> tuple[EvalContext, dict]:
    """(the evaluation context of a samples file, its info): a translation model's file (info
    "translation") is of kind translation, plus paired, cycle (reconstructions) and adaptation
    (task_predictions) as its contents say."""
    import h5py

    path = Path(path)
    rerun = f"re-run `dvc repro evaluate@{path.parent.name}`"
    if not path.is_file():
        raise SamplesFileError(f"{path}: samples file missing; {rerun}")
    try:
        with h5py.File(path, "r") as f:
            arrays = {key: f[key][()] for key in SAMPLE_ARRAYS if key in f}
            info = json.loads(f.attrs["info"])
        images = arrays.pop("images")
    except (OSError, KeyError, ValueError, TypeError) as err:  # h5py's errors for damaged files and objects
        first = str(err).splitlines()[0] if str(err) else ""
        raise SamplesFileError(f"{path}: unreadable samples file ({type(err).__name__}: {first}); {rerun}") from None
    if not info.get("translation"):
        return EvalContext(images, real_features_path, evaluator, cfg, seed, labels=arrays.get("labels")), info
    kinds = {TRANSLATION}
    if info.get("paired"):
        if "targets" not in arrays:
            raise SamplesFileError(f"{path}: info says paired but there is no `targets` dataset; {rerun}")
        kinds.add(PAIRED)
    if "reconstructions" in arrays:
        kinds.add(CYCLE)
    if "task_predictions" in arrays:
        if "task_labels" not in arrays:
            raise SamplesFileError(f"{path}: `task_predictions` without `task_labels`; {rerun}")
        kinds.add(ADAPTATION)
    arrays.pop("labels", None)
    return EvalContext(images, real_features_path, evaluator, cfg, seed, kinds=frozenset(kinds), **arrays), info
