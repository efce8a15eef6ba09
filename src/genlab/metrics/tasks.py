"""The real-data side of an image-to-image task's evaluation, reusing its dataset's where they agree.

**Target features.** A task's targets are scored against Inception features of its first N test
targets. Where those are exactly the dataset's first N test images (paired edges, super-resolution,
inpainting), the dataset's cached features are those features: they are reused, and the protocol
says so; otherwise (a disjoint half, a new domain) they are computed.

**Classifier view.** The classifier view of a task's target domain needs no classifier training.

Where a task's targets are its dataset's own images (edges, super-resolution, inpainting, a
dataset's own pairs), the dataset's classifier judges them: it is copied byte for byte as the
task's classifier and its features of the task's test targets are cached. A blend task's targets
are a new colour domain no classifier was trained on: the task gets none, with the reason (its
task_reference@ stage trains PixelDA's source-only comparison, genlab.metrics.evaluate.evaluate_identity).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genlab.data.hdf5 import read_info, read_split
from genlab.data.tasks import TASK_KINDS
from genlab.io import write_bytes_atomic
from genlab.metrics.classifier import CLASSIFIER_EXTRACTOR, PENULTIMATE_DIM, load_classifier, predict, save_no_classifier
from genlab.metrics.features import load_features, real_statistics, save_features


def task_evaluator(task_path: Path, dataset_classifier: Path, weights_path: Path, features_path: Path,
                   train_features_path: Path | None = None) -> dict:
    info = read_info(task_path)
    if train_features_path is not None:  # the evaluate stage's memorization input: none for translations
        save_features(train_features_path, np.zeros((0, PENULTIMATE_DIM), np.float32),
                      {"extractor": CLASSIFIER_EXTRACTOR, "split": "train", "N": 0,
                       "reason": "image-to-image models get no memorization check"})
    if info["task"] is None:
        raise ValueError(f"{task_path}: not a task file (no `task` attribute); re-run its task@ stage")
    kind = TASK_KINDS[info["task"]["kind"]]
    images, labels = read_split(task_path, "test")
    classifier, meta = load_classifier(dataset_classifier)
    protocol = {"extractor": CLASSIFIER_EXTRACTOR, "precision": "fp32", "dataset": info["dataset"], "split": "test"}
    record = {"dataset": info["dataset"], "test_images": int(len(images))}
    if classifier is not None and kind.targets_are_source:
        record["classifier"] = f"{dataset_classifier.name} (the dataset's, copied)"
        write_bytes_atomic(weights_path, Path(dataset_classifier).read_bytes())
        feats, logits = predict(classifier, torch.from_numpy(images))
        save_features(features_path, feats.numpy(), {**protocol, "N": int(len(feats))}, real_statistics(feats.numpy()))
        accuracy = float((logits.argmax(1).numpy() == labels).mean()) if labels is not None else None
        return {**record, "test_accuracy": accuracy, "trusted": meta.get("trusted"), "reason": meta.get("reason")}
    if classifier is None:
        reason = meta["reason"]
    else:
        reason = (f"the targets of {info['dataset']} ({kind.name}) are a domain no classifier was trained on; "
                  f"classifier-IS/FID are null (the task's baseline has the source-only classifier's accuracy)")
    save_no_classifier(weights_path, reason)
    save_features(features_path, np.zeros((0, PENULTIMATE_DIM), np.float32), {**protocol, "N": 0, "reason": reason})
    return {**record, "test_accuracy": None, "trusted": False, "reason": reason}


def task_features(task_path: Path, dataset_path: Path, dataset_features: Path, out_path: Path, cfg) -> dict:
    """Inception features of the task's first `eval.num_real` test targets, with their protocol."""
    from genlab.metrics.evaluate import REAL_SPLIT, compute_real_features
    from genlab.metrics.inception import eval_settings

    feats, protocol = load_features(dataset_features)
    n = cfg["num_real"]
    targets, _ = read_split(task_path, REAL_SPLIT, limit=n)
    images, _ = read_split(dataset_path, REAL_SPLIT, limit=n)
    _, precision, runtime = eval_settings(cfg)
    same_protocol = (protocol.get("precision"), protocol.get("runtime"), protocol.get("N")) == (precision, runtime, n)
    if same_protocol and targets.shape == images.shape and np.array_equal(targets, images):
        info = read_info(task_path)
        protocol = {**protocol, "dataset": info["dataset"],
                    "same_images_as": f"{protocol['dataset']}/{protocol['split']} (features reused)"}
        save_features(out_path, feats, protocol)
        return protocol
    return compute_real_features(task_path, out_path, cfg)
