"""The classifier view of an image-to-image task's target domain, without training a classifier.

Where a task's targets are its dataset's own images (edges, super-resolution, inpainting, a
dataset's own pairs), the dataset's classifier judges them: it is copied byte for byte as the
task's classifier and its features of the task's test targets are cached. A blend task's targets
are a new colour domain no classifier was trained on: the task gets none, with the reason (its
baseline@ stage trains PixelDA's source-only comparison, genlab.metrics.evaluate.evaluate_identity).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genlab.data.hdf5 import read_info, read_split
from genlab.data.tasks import TASK_KINDS
from genlab.io import write_bytes_atomic
from genlab.metrics.classifier import CLASSIFIER_EXTRACTOR, PENULTIMATE_DIM, load_classifier, predict, save_no_classifier
from genlab.metrics.features import save_features


def task_evaluator(task_path: Path, dataset_classifier: Path, weights_path: Path, features_path: Path) -> dict:
    info = read_info(task_path)
    if info["task"] is None:
        raise ValueError(f"{task_path}: not a task file (no `task` attribute); re-run its task@ stage")
    kind = TASK_KINDS[info["task"]["kind"]]
    images, labels = read_split(task_path, "test")
    classifier, meta = load_classifier(dataset_classifier)
    protocol = {"extractor": CLASSIFIER_EXTRACTOR, "precision": "fp32", "dataset": info["dataset"], "split": "test"}
    record = {"dataset": info["dataset"], "classifier": f"{dataset_classifier.name} (the dataset's, copied)",
              "test_images": int(len(images))}
    if classifier is not None and kind.targets_are_source:
        write_bytes_atomic(weights_path, Path(dataset_classifier).read_bytes())
        feats, logits = predict(classifier, torch.from_numpy(images))
        save_features(features_path, feats.numpy(), {**protocol, "N": int(len(feats))})
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
