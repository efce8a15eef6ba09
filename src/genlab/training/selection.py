"""The best checkpoint beside the last: a cheap score at the end of every epoch keeps the best model.

The score is the classifier-FID (the dataset classifier's penultimate features, as in the evaluate
stage's `classifier_fid`) of `train.best_samples` generated images against the first
`train.best_real` *training* images. Training, not test: a checkpoint chosen by the test split
would make the test-split numbers it is then reported with look better than they are. An
image-to-image model is scored on its translations of the first training inputs, against the
first training targets.

Scoring changes nothing in training. It scores a copy of the model (in eval mode, with
`after_training` applied, e.g. the AE's prior fit), and draws noise from its own seeded generator,
never the global one, so the last checkpoint is byte for byte what it is without selection.
The best model is saved in the same format as the last (`best.pt` beside `model.pt`), with the
epoch, step and score it was chosen at.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

METRIC = "classifier_fid"


@dataclass
class Best:
    """The best epoch so far (kept in the last checkpoint, so a resumed run goes on comparing)."""

    epoch: int = 0
    step: int = 0
    score: float = float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "score": self.score}


class CheckpointSelector:
    """Scores a model by classifier-FID against a fixed set of training images; tells when it is the best."""

    def __init__(self, classifier: torch.nn.Module, data, n_samples: int, n_real: int, seed: int, model,
                 device: torch.device):
        from genlab.classifier_net import predict

        self.classifier = classifier.to(device).eval()
        self.seed = seed
        self.prompts = model.prompts(n_samples, data)  # fixed: every epoch draws for the same prompts
        self.real_features, _ = predict(self.classifier, reference_images(data, n_real))

    @torch.no_grad()
    def score(self, model) -> float:
        """The classifier-FID of the model's samples (the model is left as it was)."""
        from genlab.classifier_net import predict

        samples = model.sample(self.prompts, torch.Generator(device="cpu").manual_seed(self.seed))
        features, _ = predict(self.classifier, samples.images)
        return frechet_distance(features, self.real_features)


def reference_images(data, k: int) -> torch.Tensor:
    """The first k training images samples are compared with: a dataset's images, a task's targets."""
    head, _ = data.head(k)
    return head[1] if isinstance(head, tuple) else head


def frechet_distance(fake: torch.Tensor, real: torch.Tensor) -> float:
    """The Frechet distance between two feature sets (N, D) in float64, by torch-fidelity's functions, as
    the evaluate stage's FIDs (genlab.metrics.fid, which this stage does not import: it is not its code)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    stats = [fid_features_to_statistics(f.double()) for f in (fake, real)]
    return float(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID])


def scored_copy(model, data):
    """A copy of `model` as it would be saved now: eval mode, after_training applied (e.g. a fitted prior)."""
    candidate = copy.deepcopy(model).eval()
    candidate.after_training(data)
    return candidate


def own_random_state(device: torch.device):
    """A block whose use of the global generators (a network's random initialization before its weights
    are loaded, say) leaves training's random stream as it was."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


@dataclass(frozen=True)
class SelectionPlan:
    """What choosing the best checkpoint needs from params.yaml and the stage's inputs."""

    metric: str  # train.best_metric: classifier_fid, or none
    n_samples: int  # train.best_samples
    n_real: int  # train.best_real
    seed: int  # the protocol's seed: the scored samples' noise
    classifier_path: Path | None  # the dataset classifier given to the train stage


def open_selector(plan: SelectionPlan, data, model, device: torch.device):
    """The selector `train.best_metric` asks for, or (None, why not) where there is none to use."""
    with own_random_state(device):
        return _open_selector(plan, data, model, device)


def _open_selector(plan: SelectionPlan, data, model, device):
    if plan.metric == "none":
        return None, "train.best_metric is none"
    from genlab.classifier_net import load_classifier

    if plan.classifier_path is None or not Path(plan.classifier_path).exists():
        return None, "no dataset classifier was given to the train stage"
    classifier, meta = load_classifier(plan.classifier_path)
    if classifier is None:
        return None, meta["reason"]
    return CheckpointSelector(classifier, data, plan.n_samples, plan.n_real, plan.seed, model, device), None
