"""The classifier view: a small CNN trained once per dataset, used as a torch-fidelity extractor.

Inception features know nothing of garments; a classifier trained on the dataset itself tells
which classes samples look like. From it: classifier-IS (logits), classifier-FID (penultimate
features), the class histogram of samples (mode collapse shows as uncovered classes) and, for
conditional models, the share of samples classified as the label they were generated for.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
from tqdm import tqdm

from genlab.data.hdf5 import read_info, read_split
# load_classifier and predict live with the network (the train stage scores with them) and are re-exported here
from genlab.classifier_net import PENULTIMATE_DIM, SmallCNN, load_classifier, predict  # noqa: F401
from genlab.objectives.optim import adam, optimizer_step
from genlab.torch_io import save_torch_atomic

CLASSIFIER_EXTRACTOR = "genlab-classifier"
FEATURE_PENULTIMATE = "penultimate"
FEATURE_LOGITS = "logits_unbiased"


def fit_classifier(x: torch.Tensor, y: torch.Tensor, num_classes: int, *, epochs: int, batch_size: int, lr: float,
                   seed: int, desc: str) -> SmallCNN:
    """A SmallCNN trained on uint8 images x (N, C, H, W) and int64 labels y, on x's device (seeded)."""
    torch.manual_seed(seed)
    model = SmallCNN(x.shape[1], x.shape[2], num_classes).to(x.device)
    opt = adam(model.parameters(), lr, betas=(0.9, 0.999))  # PyTorch's default betas
    shuffle = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, len(x))
    steps = len(x) // batch_size
    start = time.perf_counter()
    model.train()
    with tqdm(total=epochs * steps, desc=desc, unit="step", dynamic_ncols=True) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=shuffle).to(x.device)
            for i in range(steps):
                idx = order[i * batch_size:(i + 1) * batch_size]
                _, logits = model(x[idx])
                loss = F.cross_entropy(logits, y[idx])
                optimizer_step(opt, loss)
                bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{bar.n * batch_size / (time.perf_counter() - start):.0f}")
    return model


def train_classifier(data_path: Path, out_path: Path, *, epochs: int, batch_size: int, lr: float, seed: int,
                     device: torch.device, limit: int | None = None, min_accuracy: float = 0.0) -> dict:
    """Train on the train split; return {test_accuracy, trusted, ...}; save weights and shape atomically.

    `trusted` is test accuracy >= `min_accuracy`: below it, the classifier view of every model
    on this dataset says its values are not to be trusted (e.g. CIFAR-10 on a short CPU budget)."""
    info = read_info(data_path)
    x_np, y_np = read_split(data_path, "train", limit=limit)
    x, y = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
    model = fit_classifier(x, y, len(info["class_names"]), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                           desc=f"evaluator {info['dataset']}")
    xt, yt = read_split(data_path, "test")
    _, logits = predict(model.cpu(), torch.from_numpy(xt))
    accuracy = float((logits.argmax(1).numpy() == yt).mean())
    trusted = accuracy >= min_accuracy
    reason = None if trusted else (f"the dataset classifier reached only {accuracy:.3f} test accuracy "
                                   f"(evaluator.min_accuracy: {min_accuracy}); its view is not to be trusted. "
                                   f"Raise evaluator.epochs")
    _save_blob(out_path, {"state_dict": model.state_dict(), "channels": info["channels"], "side": info["height"],
                          "num_classes": len(info["class_names"]), "class_names": info["class_names"],
                          "test_accuracy": accuracy, "trusted": trusted, "reason": reason})
    return {"test_accuracy": accuracy, "trusted": trusted, "min_accuracy": min_accuracy, "reason": reason,
            "epochs": epochs, "train_images": int(len(x)), "test_images": int(len(xt))}


def source_only_predictions(data_path: Path, *, epochs: int, batch_size: int, lr: float, seed: int,
                            device: torch.device, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """A domain-adaptation task's baseline: the dataset classifier trained on the SOURCE domain only
    (train `inputs` + `input_labels`, brought to the targets' geometry as the identity baseline's
    outputs are), then applied to every test target image. (predictions, test labels, what it was)."""
    from genlab.data.hdf5 import read_inputs
    from genlab.data.tasks import to_target_geometry

    info = read_info(data_path)
    inputs, input_labels = read_inputs(data_path, "train", limit=limit)
    xt, yt = read_split(data_path, "test")
    if input_labels is None or yt is None:
        raise ValueError(f"{data_path}: a source-only classifier needs train `input_labels` and test `labels`; "
                         f"this task file lacks {'input_labels' if input_labels is None else 'labels'}")
    x = torch.from_numpy(to_target_geometry(inputs, (info["channels"], info["height"], info["width"]))).to(device)
    num_classes = max(len(info["class_names"]), int(max(input_labels.max(), yt.max())) + 1)
    model = fit_classifier(x, torch.from_numpy(input_labels).to(device), num_classes, epochs=epochs,
                           batch_size=batch_size, lr=lr, seed=seed, desc=f"source-only {info['dataset']}")
    _, logits = predict(model.cpu(), torch.from_numpy(xt))
    what = (f"source-only {CLASSIFIER_EXTRACTOR} (SmallCNN, {epochs} epoch(s), seed {seed}) trained on "
            f"{info['dataset']}/train inputs + input_labels ({len(x)} images, nearest-upsampled to the targets' "
            f"geometry), applied to every {info['dataset']}/test image")
    return logits.argmax(1).numpy(), yt, what


def save_no_classifier(out_path: Path, reason: str) -> None:
    """The evaluator's output for a dataset without labels: no weights, and why."""
    _save_blob(out_path, {"state_dict": None, "reason": reason})


def _save_blob(path: Path, blob: dict) -> None:
    """Plain types only (str class names, floats, bools, None, tensors): loadable as weights_only."""
    save_torch_atomic(blob, path)


class ClassifierExtractor(FeatureExtractorBase):
    """torch-fidelity extractor over the dataset's classifier: `penultimate` (FID/KID/PRC) and
    `logits_unbiased` (IS). The weights come from `feature_extractor_weights_path`."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if not feature_extractor_weights_path:
            raise ValueError(f"{name}: pass feature_extractor_weights_path (the evaluator stage's output)")
        self.model, meta = load_classifier(Path(feature_extractor_weights_path))
        if self.model is None:
            raise ValueError(f"{name}: {feature_extractor_weights_path} holds no classifier: {meta['reason']}")
        self.requires_grad_(False)

    @staticmethod
    def get_provided_features_list():
        return (FEATURE_PENULTIMATE, FEATURE_LOGITS)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": FEATURE_LOGITS, "fid": FEATURE_PENULTIMATE, "kid": FEATURE_PENULTIMATE,
                "prc": FEATURE_PENULTIMATE}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 1, 28, 28, dtype=torch.uint8)

    def forward(self, x):
        penultimate, logits = self.model(x)
        out = {FEATURE_PENULTIMATE: penultimate, FEATURE_LOGITS: logits}
        return tuple(out[name] for name in self.features_list)


if CLASSIFIER_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(CLASSIFIER_EXTRACTOR, ClassifierExtractor)


def classifier_view(samples: np.ndarray, labels: np.ndarray | None, classifier_path: Path,
                    real_penultimate: np.ndarray, seed: int) -> dict:
    """Classifier-IS, classifier-FID, class histogram and (with labels) conditional accuracy.

    Each is null with the reason when the dataset has no classifier (no labels); when its test
    accuracy is below evaluator.min_accuracy, the values are kept but flagged `trusted: false`."""
    from genlab.metrics.fid import compute_fid, kernel_distance

    model, meta = load_classifier(classifier_path)
    if model is None:
        return _null_view(meta["reason"])
    extractor = ClassifierExtractor(CLASSIFIER_EXTRACTOR, [FEATURE_PENULTIMATE, FEATURE_LOGITS],
                                    feature_extractor_weights_path=str(classifier_path))
    feats, logits = predict(extractor, torch.from_numpy(np.ascontiguousarray(samples)))
    k = logits.size(1)
    predicted = logits.argmax(1)
    histogram = torch.bincount(predicted, minlength=k).tolist()
    n = len(predicted)
    isc = isc_features_to_metric(logits, splits=min(10, n), rng_seed=seed)
    fid = compute_fid(feats.numpy(), real_penultimate)
    kid = kernel_distance(feats.numpy(), real_penultimate, seed=seed) if n > 1 and len(real_penultimate) > 1 else None
    protocol = {"extractor": CLASSIFIER_EXTRACTOR, "n_fake": n, "n_real": int(len(real_penultimate)),
                "classifier_accuracy": meta["test_accuracy"], "trusted": meta.get("trusted", True)}
    if meta.get("reason"):
        protocol["reason"] = meta["reason"]
    record = {
        "classifier_is": {"mean": isc["inception_score_mean"], "std": isc["inception_score_std"],
                          "splits": min(10, n), **protocol},
        "classifier_fid": {"value": fid, **protocol},
        "classifier_kid": ({**kid, "std_is": "estimator noise: the std over KID's random subsets, not over "
                                             "training seeds", **protocol} if kid else
                           {"mean": None, "std": None, "reason": "KID needs at least 2 samples and 2 real images"}),
        "class_histogram": {"counts": histogram, "classes_covered": int(sum(c >= max(1, 0.01 * n) for c in histogram)),
                            "num_classes": k, "n": n},
        "conditional_accuracy": {"value": None, "reason": "unconditional model: samples have no labels"},
    }
    record["features"] = feats.numpy()  # the samples' penultimate features, for the metrics that reuse them
    if labels is not None:
        record["conditional_accuracy"] = {"value": float((predicted.numpy() == labels).mean()), "n": n,
                                          "trusted": protocol["trusted"]}
    return record


def _null_view(reason: str) -> dict:
    return {"classifier_is": {"mean": None, "reason": reason}, "classifier_fid": {"value": None, "reason": reason},
            "classifier_kid": {"mean": None, "std": None, "reason": reason}, "features": None,
            "class_histogram": {"counts": None, "classes_covered": None, "reason": reason},
            "conditional_accuracy": {"value": None, "reason": reason}}
