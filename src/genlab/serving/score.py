"""`genlab score IMAGES --dataset D`: images made anywhere, scored under the pipeline's protocol.

Every metric the evaluate stage computes for a noise-to-image model's samples (the rank key and the rest of
the classifier view, FID/KID/precision/recall/density/coverage in Inception's space, the memorization check)
against D's cached real features and classifier, with params.yaml's `eval` settings and seed: the numbers
are comparable with the leaderboard's rows at the same N. The images must have D's size and channel count;
nothing is resized. The record says what was scored (file, count, sha256 of the pixels) beside each metric's
protocol.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from genlab.errors import InputError
from genlab.serving.images import read_images, require_geometry


class MissingEvaluation(InputError):
    """A dataset whose cached features or classifier are not on disk."""


def dataset_files(root: Path, dataset: str, num_real: int) -> dict[str, Path]:
    """Where the pipeline keeps dataset D's packed file, real features and classifier (dvc.yaml's paths)."""
    return {"packed": root / "data" / "packed" / f"{dataset}.h5",
            "real_features": root / "data" / "features" / f"{dataset}-test-n{num_real}.h5",
            "classifier": root / "data" / "evaluator" / f"{dataset}.pt",
            "classifier_features": root / "data" / "features" / f"{dataset}-test-classifier.h5",
            "train_features": root / "data" / "features" / f"{dataset}-train-classifier.h5"}


def score(images_path: Path, dataset: str, root: Path = Path(".")) -> dict[str, Any]:
    """The evaluate stage's record for the images at `images_path`, against dataset (or task) `dataset`."""
    from genlab.config import load_params
    from genlab.data.hdf5 import read_info
    from genlab.metrics.evaluate import EvaluatorFiles, evaluate_samples

    params = load_params(Path(root) / "params.yaml", models=False)
    known = [*params.datasets, *params.tasks]
    if dataset not in known:
        raise MissingEvaluation(f"--dataset {dataset}: not a dataset or task of params.yaml (it has: {', '.join(known)})")
    files = dataset_files(Path(root), dataset, params.eval["num_real"])
    missing = [str(p) for key, p in files.items() if key != "train_features" and not p.exists()]
    if missing:
        raise MissingEvaluation(f"{', '.join(missing)} missing: run `dvc repro evaluator@{dataset} "
                                f"real_features@{dataset}` (or `dvc pull`) first")
    images = read_images(images_path)
    info = read_info(files["packed"])
    require_geometry(images, (info["channels"], info["height"], info["width"]), f"dataset {dataset}", images_path)
    evaluator = EvaluatorFiles(files["classifier"], files["classifier_features"],
                               files["train_features"] if files["train_features"].exists() else None)
    record = evaluate_samples(images, None, files["real_features"], evaluator, params.eval, params.seed)
    return {"scored": {"images": str(images_path), "n": int(len(images)),
                       "sha256": hashlib.sha256(images.tobytes()).hexdigest(), "dataset": dataset,
                       "protocol": "genlab's evaluate stage with params.yaml's eval settings and seed; "
                                   "images scored as given (no resize)"},
            **record}
