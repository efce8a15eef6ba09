"""The evaluate stages: real-data features cached once per protocol, and one metrics file per model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from genlab.data.hdf5 import read_info, read_split
from genlab.metrics.features import extract_features, feature_protocol, load_features, save_features
from genlab.metrics.fid import compute_fid_kid, compute_precision_recall
from genlab.metrics.inception import INCEPTION_EXTRACTOR, resolve_runtime
from genlab.training.device import resolve_device, resolve_precision

REAL_SPLIT = "test"


def eval_settings(cfg: Mapping[str, Any]) -> tuple[str, str, str]:
    """(device, precision, Inception runtime) that eval.device/precision/runtime resolve to here."""
    device = resolve_device(cfg["device"])
    precision = resolve_precision(cfg["precision"], device)
    return str(device), precision, resolve_runtime(cfg.get("runtime", "auto"), device, precision)


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
    """What the evaluator stage wrote for a dataset: its classifier and that classifier's test features."""

    classifier: Path
    features: Path


def train_evaluator(data_path: Path, weights_path: Path, features_path: Path, cfg: Mapping[str, Any],
                    seed: int) -> dict:
    """Train the dataset classifier and cache its penultimate features of the whole test split.

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
        save_features(features_path, np.zeros((0, PENULTIMATE_DIM), np.float32), {**protocol, "N": 0, "reason": reason})
        return {"dataset": info["dataset"], "test_accuracy": None, "trusted": False, "reason": reason}
    record = train_classifier(data_path, weights_path, epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                              lr=cfg["lr"], seed=seed, device=resolve_device("auto"),
                              limit=cfg["train_limit"], min_accuracy=cfg["min_accuracy"])
    model, _ = load_classifier(weights_path)
    images, _ = read_split(data_path, REAL_SPLIT)
    feats, _ = predict(model, torch.from_numpy(images))
    save_features(features_path, feats.numpy(), {**protocol, "N": int(len(feats))})
    return {"dataset": info["dataset"], **record}


def evaluate_reference(data_path: Path, n: int, real_features_path: Path, evaluator: EvaluatorFiles,
                       cfg: Mapping[str, Any], seed: int) -> dict:
    """Real against real: the first n *train* images, with their true labels, scored like a model's
    samples against the test split. The floor a model is read against (same N, same protocol)."""
    images, labels = read_split(data_path, "train", limit=n)
    return evaluate_samples(images, labels, real_features_path, evaluator, cfg, seed)


def evaluate_samples(samples: np.ndarray, labels: np.ndarray | None, real_features_path: Path,
                     evaluator: EvaluatorFiles, cfg: Mapping[str, Any], seed: int) -> dict:
    """FID and KID of uint8 samples against cached real features; every value carries its protocol."""
    real, real_protocol = load_features(real_features_path)
    device, precision, runtime = eval_settings(cfg)
    for key, value in (("precision", precision), ("runtime", runtime)):
        if value != real_protocol.get(key):
            raise ValueError(f"eval.{key} resolves to {value} but {real_features_path} was computed with "
                             f"{real_protocol.get(key)}; re-run its stage (dvc repro) so both match")
    fake = extract_features(samples, batch_size=cfg["batch_size"], device=device, precision=precision,
                            runtime=runtime, desc="features samples")
    values = compute_fid_kid(fake, real, kid_subset_size=cfg["kid_subset_size"], seed=seed)
    protocol = {
        "extractor": INCEPTION_EXTRACTOR,
        "weights_sha256": real_protocol.get("weights_sha256"),
        "compute_dtype": precision,
        "runtime": runtime,
        "n_fake": int(len(fake)),
        "n_real": int(real_protocol["N"]),
        "real_split": f"{real_protocol['dataset']}/{real_protocol['split']}",
    }
    kid_n = min(cfg["kid_subset_size"], len(fake), len(real))
    from genlab.metrics.classifier import classifier_view

    real_penultimate, _ = load_features(evaluator.features)
    return {
        **classifier_view(samples, labels, evaluator.classifier, real_penultimate, seed),
        "fid": {"value": values["fid"], **protocol},
        "kid": {"mean": values["kid_mean"], "std": values["kid_std"], "subset_size": kid_n, **protocol},
        "precision_recall": {**compute_precision_recall(fake, real), **protocol},
        "inception_score": inception_score(samples, cfg, seed),
    }


def metric_numbers(record: Mapping[str, Any]) -> dict[str, float | None]:
    """The numbers a user compares across models and experiments: the DVC metrics file
    (`dvc metrics show`, `dvc exp show`); null where the protocol file gives the reason."""
    return {"fid": record["fid"]["value"], "kid_mean": record["kid"]["mean"], "kid_std": record["kid"]["std"],
            "precision": record["precision_recall"]["precision"], "recall": record["precision_recall"]["recall"],
            "classifier_fid": record["classifier_fid"]["value"], "classifier_is": record["classifier_is"]["mean"],
            "classes_covered": record["class_histogram"]["classes_covered"],
            "conditional_accuracy": record["conditional_accuracy"]["value"],
            "inception_score": record["inception_score"]["value"]}


def mlflow_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers logged to MLflow: the metrics file's, and FID/KID named after their N as well
    (e.g. fid_n2000), so runs scored with different N are never compared under one name."""
    n = record["fid"]["n_fake"]
    out = {**metric_numbers(record), f"fid_n{n}": record["fid"]["value"], f"kid_mean_n{n}": record["kid"]["mean"],
           f"kid_std_n{n}": record["kid"]["std"]}
    return {key: value for key, value in out.items() if value is not None}  # null: see the protocol file's reason


TORCH_FIDELITY_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


def inception_weights_path(cfg: Mapping[str, Any]) -> Path:
    """eval.inception_weights, or where torch-fidelity's own download would have cached the file."""
    if cfg.get("inception_weights"):
        return Path(cfg["inception_weights"])
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / TORCH_FIDELITY_WEIGHTS


def inception_score(samples: np.ndarray, cfg: Mapping[str, Any], seed: int) -> dict:
    """IS from torch-fidelity's `inception-v3-compat` logits when its full weights are on disk;
    otherwise null with the reason (the offline fid-helper weights have no logits layer)."""
    path = inception_weights_path(cfg)
    if not path.is_file():
        return {"value": None, "reason": (
            f"Inception Score needs torch-fidelity's full Inception weights ({TORCH_FIDELITY_WEIGHTS}); "
            f"not found at {path}. Download it once from torch-fidelity's releases and set "
            f"eval.inception_weights to its path (the offline FID weights have no logits layer).")}
    import torch
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.utils import create_feature_extractor

    device = eval_settings(cfg)[0]
    try:
        extractor = create_feature_extractor("inception-v3-compat", ["logits_unbiased"], cuda=device.startswith("cuda"),
                                             feature_extractor_weights_path=str(path), verbose=False)
    except Exception as err:  # a corrupt or wrong file must not crash the evaluation of everything else
        return {"value": None, "reason": f"could not load {path}: {err}"}
    images = torch.from_numpy(np.ascontiguousarray(samples))
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    with torch.no_grad():
        logits = torch.cat([extractor(chunk.to(device))[0].cpu() for chunk in images.split(cfg["batch_size"])])
    splits = min(10, len(logits))
    isc = isc_features_to_metric(logits, splits=splits, rng_seed=seed)
    return {"value": isc["inception_score_mean"], "std": isc["inception_score_std"], "splits": splits,
            "n": int(len(logits)), "extractor": "inception-v3-compat", "weights": path.name}
