"""Tiny synthetic files for the evaluation tests: a packed dataset or image-to-image task file (written
with genlab.data.hdf5's own layout), its real features and evaluator, and translation samples files.

Images are a few Gaussian blobs whose position follows the label, so a small classifier learns them in
one epoch and Inception sees structure rather than noise."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from genlab.data.hdf5 import FORMAT_VERSION, create_file, write_arrays

NUM_CLASSES = 4


def blobs(labels: np.ndarray, side: int, channels: int, seed: int) -> np.ndarray:
    """uint8 (n, channels, side, side): one bright blob per image in the quadrant of its label, plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64) / side
    cy = 0.3 + 0.4 * (labels // 2) + rng.uniform(-0.08, 0.08, len(labels))
    cx = 0.3 + 0.4 * (labels % 2) + rng.uniform(-0.08, 0.08, len(labels))
    d2 = (yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2
    img = np.exp(-d2 / (2 * 0.12**2))[:, None] + rng.normal(0, 0.05, (len(labels), channels, side, side))
    return (img.clip(0, 1) * 255).round().astype(np.uint8)


def labels_of(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, NUM_CLASSES, n).astype(np.int64)


def write_packed(path: Path, name: str, *, n_train: int = 64, n_test: int = 24, side: int = 28, channels: int = 1,
                 inputs: dict | None = None) -> Path:
    """A labelled packed file; with `inputs` ({side, channels, paired, input_labels}) a task file whose
    inputs are blobs of the same labels (paired: same label and jitter as their targets)."""
    with create_file(path) as f:
        for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
            labels = labels_of(n, seed)
            arrays = {"images": blobs(labels, side, channels, seed), "labels": labels}
            if inputs is not None:
                source = labels if inputs["paired"] else labels_of(n + 3, seed + 10)
                arrays["inputs"] = blobs(source, inputs["side"], inputs["channels"], seed)
                if inputs.get("input_labels"):
                    arrays["input_labels"] = source
            write_arrays(f.create_group(split, track_order=False), arrays)
        f.attrs["dataset"] = name
        f.attrs["class_names"] = json.dumps([f"c{i}" for i in range(NUM_CLASSES)])
        f.attrs["labelled"] = np.bool_(True)
        f.attrs["source_checksums"] = json.dumps({})
        f.attrs["preprocessing"] = json.dumps({"side": side})
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        if inputs is not None:
            f.attrs["paired"] = np.bool_(inputs["paired"])
            f.attrs["task"] = json.dumps({"name": name, "kind": "test", "dataset": "blobs"}, sort_keys=True)
    return path


def packed_with_classifier(root: Path, *, n_train: int, n_test: int, epochs: int = 1) -> tuple[Path, Path]:
    """A labelled packed Fashion-MNIST stand-in and its dataset classifier (what a train stage is given)."""
    import torch

    from genlab.metrics.classifier import train_classifier

    packed = write_packed(root / "fashion-mnist.h5", "fashion-mnist", n_train=n_train, n_test=n_test)
    classifier = root / "classifier.pt"
    train_classifier(packed, classifier, epochs=epochs, batch_size=32, lr=1e-3, seed=0, device=torch.device("cpu"))
    return packed, classifier


EVAL_CFG = {"num_real": 24, "batch_size": 24, "precision": "fp32", "device": "cpu", "kid_subset_size": 250,
            "runtime": "auto", "inception_weights": "/nonexistent/weights-inception.pth"}
EVALUATOR_CFG = {"epochs": 1, "batch_size": 16, "lr": 1e-3, "train_limit": None, "min_accuracy": 0.5}


def prepare(root: Path, packed: Path):
    """The real_features@ and evaluator@ outputs of `packed`: (real features path, EvaluatorFiles)."""
    from genlab.metrics.evaluate import EvaluatorFiles, compute_real_features, train_evaluator

    real = root / f"{packed.stem}-real.h5"
    compute_real_features(packed, real, EVAL_CFG)
    evaluator = EvaluatorFiles(root / f"{packed.stem}.pt", root / f"{packed.stem}-clf.h5")
    train_evaluator(packed, evaluator.classifier, evaluator.features, EVALUATOR_CFG, seed=0)
    return real, evaluator


def write_translation_samples(path: Path, arrays: dict[str, np.ndarray], info: dict) -> Path:
    """A samples file as evaluate@<model> writes it for a translation model (contract section 2)."""
    with h5py.File(path, "w") as f:
        for key, array in arrays.items():
            f.create_dataset(key, data=array)
        f.attrs["info"] = json.dumps({"translation": True, "seed": 0, "train_precision": "fp32", **info},
                                     sort_keys=True)
    return path
