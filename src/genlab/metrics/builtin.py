"""genlab's metrics, one registered function each (see genlab.metrics.registry).

Each takes an EvalContext (genlab.metrics.evaluate) and returns its record entry: the value(s) with
the protocol they were computed under, or null values with the reason.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from genlab.metrics.registry import ADAPTATION, CYCLE, GENERATIVE, NOISE, PAIRED, Column, fixed, integer, register_metric


def _kid_cell(row: Any) -> str:
    return "—" if fixed("kid_mean", 0)(row) == "—" else f"{row.kid_mean:.4f} ± {row.kid_std:.4f}"


# -- Inception features of the samples against the real test split's ----------------------------
@register_metric("fid", applies_to=GENERATIVE, numbers={"fid": "value"}, per_n=True, space="inception",
                 columns=[Column("fid", "FID (biased: equal N only)", fixed("fid", 2))],
                 protocol="torch-fidelity FID of the first eval.num_fake samples vs eval.num_real test images; "
                          "biased upwards at small N, by an amount that differs between models")
def fid(ctx) -> dict:
    """Fréchet Inception Distance of the samples to the real test features (torch-fidelity)."""
    return {"value": ctx.fid_kid["fid"], **ctx.inception[2]}


@register_metric("kid", applies_to=GENERATIVE, numbers={"kid_mean": "mean", "kid_std": "std"}, per_n=True,
                 space="inception", columns=[Column("kid_mean", "KID (mean ± subset std)", _kid_cell, align="---")],
                 protocol="unbiased MMD^2 with the cubic polynomial kernel (Binkowski et al. 2018), 100 subsets")
def kid(ctx) -> dict:
    """Kernel Inception Distance, mean and std over subsets of min(eval.kid_subset_size, N_fake, N_real)."""
    fake, real, protocol = ctx.inception
    subset = min(ctx.cfg["kid_subset_size"], len(fake), len(real))
    return {"mean": ctx.fid_kid["kid_mean"], "std": ctx.fid_kid["kid_std"], "subset_size": subset, **protocol}


@register_metric("precision_recall", applies_to=GENERATIVE, numbers={"precision": "precision", "recall": "recall"},
                 space="inception", protocol="Kynkaanniemi et al. 2019, k = 3, Inception features", columns=[Column("precision", "precision", fixed("precision", 2)),
                          Column("recall", "recall", fixed("recall", 2))])
def precision_recall(ctx) -> dict:
    """Improved precision (fidelity) and recall (coverage), Kynkäänniemi et al. 2019, k = 3."""
    from genlab.metrics.fid import compute_precision_recall

    fake, real, protocol = ctx.inception
    return {**compute_precision_recall(fake, real), **protocol}


# -- the dataset classifier's view (null with the reason when the dataset has no labels) ----------
@register_metric("classifier_fid", applies_to=GENERATIVE, numbers={"classifier_fid": "value"}, space="classifier",
                 columns=[Column("classifier_fid", "clf-FID", fixed("classifier_fid", 1))])
def classifier_fid(ctx) -> dict:
    """FID in the dataset classifier's penultimate features."""
    return ctx.classifier["classifier_fid"]


@register_metric("classifier_is", applies_to=GENERATIVE, numbers={"classifier_is": "mean"}, space="classifier",
                 columns=[Column("classifier_is", "clf-IS", fixed("classifier_is", 2))])
def classifier_is(ctx) -> dict:
    """Inception Score in the dataset classifier's logits."""
    return ctx.classifier["classifier_is"]


@register_metric("class_histogram", applies_to=GENERATIVE, numbers={"classes_covered": "classes_covered"},
                 space="classifier",
                 columns=[Column("classes_covered", "classes", integer("classes_covered"))])
def class_histogram(ctx) -> dict:
    """Samples per class the classifier predicts; classes covered by at least 1% of them."""
    return ctx.classifier["class_histogram"]


@register_metric("conditional_accuracy", applies_to=[NOISE], numbers={"conditional_accuracy": "value"},
                 space="classifier",
                 columns=[Column("conditional_accuracy", "cond. acc.", fixed("conditional_accuracy", 2))])
def conditional_accuracy(ctx) -> dict:
    """Share of a conditional model's samples classified as the label they were generated for."""
    return ctx.classifier["conditional_accuracy"]


@register_metric("inception_score", applies_to=GENERATIVE, numbers={"inception_score": "value"}, space="inception",
                 columns=[Column("inception_score", "IS", fixed("inception_score", 2))])
def inception_score(ctx) -> dict:
    """Inception Score from torch-fidelity's full Inception weights (null when they are not on disk)."""
    from genlab.metrics.inception_score import inception_score as compute

    return compute(ctx.samples[:ctx.cfg.get("num_fake")], ctx.cfg, ctx.seed)


@register_metric("density_coverage", applies_to=GENERATIVE, numbers={"density": "density", "coverage": "coverage"},
                 space="inception", protocol="Naeem et al. 2020, k = 5, Inception features",
                 columns=[Column("density", "density", fixed("density", 2)),
                          Column("coverage", "coverage", fixed("coverage", 2))])
def density_coverage(ctx) -> dict:
    """Density (fidelity, ~1 for real data) and coverage (share of real k-NN balls holding a sample), k = 5."""
    from genlab.metrics.neighbours import density_coverage as compute

    fake, real, protocol = ctx.inception
    return {**compute(fake, real, k=5), **protocol}


# -- the rank key and its kin: the dataset classifier's features, every sample, the whole test split -------
@register_metric("classifier_kid", applies_to=GENERATIVE, space="classifier",
                 numbers={"classifier_kid": "mean", "classifier_kid_std": "std"},
                 protocol="unbiased KID (Binkowski et al. 2018) of every sample vs the whole test split in the "
                          "dataset classifier's penultimate features, one estimate over all pairs (std over 10 subsets of min(1000, N)): the rank key",
                 columns=[Column("classifier_kid", "clf-KID x1e3", lambda row: "—" if fixed("classifier_kid", 0)(row) == "—"
                                 else f"{1e3 * row.classifier_kid:.2f}")])
def classifier_kid(ctx) -> dict:
    """KID in the dataset classifier's penultimate features: unbiased at any N, so it ranks models."""
    return ctx.classifier["classifier_kid"]


@register_metric("classifier_precision_recall", applies_to=GENERATIVE, space="classifier",
                 numbers={"classifier_precision": "precision", "classifier_recall": "recall"},
                 protocol="Kynkaanniemi et al. 2019, k = 3, the dataset classifier's features",
                 columns=[Column("classifier_precision", "clf-precision", fixed("classifier_precision", 2)),
                          Column("classifier_recall", "clf-recall", fixed("classifier_recall", 2))])
def classifier_precision_recall(ctx) -> dict:
    """Improved precision/recall (k = 3) in the dataset classifier's features."""
    from genlab.metrics.neighbours import precision_recall

    return _classifier_space(ctx, precision_recall, ("precision", "recall"))


def _classifier_space(ctx, compute, numbers) -> dict:
    """compute(fake, real) in the classifier's features with their protocol; null numbers and the reason
    where the dataset has no classifier."""
    features = ctx.classifier_features
    if features is None:
        return {**dict.fromkeys(numbers), "reason": ctx.classifier_fid_reason}
    fake, real, protocol = features
    return {**compute(fake, real), **protocol}


@register_metric("classifier_density_coverage", applies_to=GENERATIVE, space="classifier",
                 numbers={"classifier_density": "density", "classifier_coverage": "coverage"},
                 protocol="Naeem et al. 2020, k = 5, the dataset classifier's features",
                 columns=[Column("classifier_density", "clf-density", fixed("classifier_density", 2)),
                          Column("classifier_coverage", "clf-coverage", fixed("classifier_coverage", 2))])
def classifier_density_coverage(ctx) -> dict:
    """Density and coverage (k = 5) in the dataset classifier's features."""
    from genlab.metrics.neighbours import density_coverage as compute

    return _classifier_space(ctx, lambda fake, real: compute(fake, real, k=5), ("density", "coverage"))


MEMORIZATION_SHOWN = 16  # samples closest to the training split, kept with their nearest training image


@register_metric("memorization", applies_to=[NOISE], space="classifier", numbers={"memorization_ct": "c_t"},
                 protocol="Meehan et al. 2020's C_T: generated vs held-out test images' distances to their nearest "
                          "training image, per k-means cell of the training split, in the classifier's features; "
                          "C_T < -3 flags data copying",
                 columns=[Column("memorization_ct", "C_T", fixed("memorization_ct", 1))])
def memorization(ctx) -> dict:
    """Data-copying test: do samples lie closer to training images than held-out test images do?"""
    from genlab.metrics.neighbours import data_copying, nearest

    features = ctx.classifier_features
    if features is None or ctx.evaluator.train_features is None:
        reason = ctx.classifier_fid_reason if features is None else "no training-split features were given"
        return {"c_t": None, "reason": reason}
    fake, test, protocol = features
    reference = ctx.copying_reference
    if reference is None:
        return {"c_t": None, "reason": "the evaluator saved no training-split features (dataset without labels)"}
    result = data_copying(fake, reference=reference)
    index, distance = nearest(fake, reference.train)
    closest = np.argsort(distance, kind="stable")[:MEMORIZATION_SHOWN]
    result.pop("cell_z")
    return {**result, "space": protocol["extractor"], "train_split": f"the first {result['n_train']} train images",
            "nearest": {"sample": closest.tolist(), "train": index[closest].tolist(),
                        "distance": [float(d) for d in distance[closest]]}}


@register_metric("fid_inf", applies_to=[NOISE], space="inception", numbers={"fid_inf": "value"},
                 protocol="Chong & Forsyth 2020: FID at 15 sample sizes, fitted as a + b/N; FID-inf = a",
                 columns=[Column("fid_inf", "FID-inf", fixed("fid_inf", 2))])
def fid_inf(ctx) -> dict:
    """FID extrapolated to infinitely many samples (eval.fid_inf; the first seed of each model)."""
    if not ctx.cfg.get("fid_inf"):
        return {"value": None, "reason": "eval.fid_inf is false (the study preset turns it on)"}
    if ctx.seed_position > 0:
        return {"value": None, "reason": "FID-inf is computed for the first training seed of each model only"}
    from genlab.metrics.neighbours import fid_infinity

    fake, real, protocol = ctx.inception
    return {**fid_infinity(fake, real, seed=ctx.seed), **protocol}


# -- translation: outputs against their targets, reconstructions against inputs, task accuracy ----
_PIXELS = {"data_range": 1, "scale": "uint8 / 255, float64"}


def _pixel_entry(ctx, name: str, value: float, compared: str, **protocol) -> dict:
    entry = {"value": value, "n": int(len(ctx.samples)), "compared": compared, **_PIXELS, **protocol}
    if not math.isfinite(value):
        entry.update(value=None, reason=f"{name} is infinite: every pixel of some output equals its target")
    return entry


def _versus_targets(ctx) -> str:
    return f"outputs ({ctx.outputs}) vs their targets (the test images paired with those inputs)"


@register_metric("psnr", applies_to=[PAIRED], numbers={"psnr": "value"},
                 columns=[Column("psnr", "PSNR (dB)", fixed("psnr", 2))])
def psnr(ctx) -> dict:
    """Peak signal-to-noise ratio in dB (data range 1), mean over images of each image's PSNR."""
    from genlab.metrics.translation import psnr as compute

    return _pixel_entry(ctx, "PSNR", compute(ctx.samples, ctx.targets), _versus_targets(ctx), unit="dB",
                        reduction="mean over images of 10 log10(1 / MSE)")


@register_metric("ssim", applies_to=[PAIRED], numbers={"ssim": "value"},
                 columns=[Column("ssim", "SSIM", fixed("ssim", 3))])
def ssim(ctx) -> dict:
    """Structural similarity (Wang et al. 2004), Gaussian window 11, sigma 1.5, per channel, mean over images."""
    from genlab.metrics import translation as t

    return _pixel_entry(ctx, "SSIM", t.ssim(ctx.samples, ctx.targets), _versus_targets(ctx),
                        window=f"gaussian {t.SSIM_WINDOW}x{t.SSIM_WINDOW}, sigma {t.SSIM_SIGMA}", k1=t.SSIM_K1,
                        k2=t.SSIM_K2, covariance="population", reference="Wang et al. 2004",
                        reduction="mean SSIM map (valid region) per channel, mean over channels, then over images")


@register_metric("l1", applies_to=[PAIRED], numbers={"l1": "value"}, columns=[Column("l1", "L1", fixed("l1", 3))])
def l1(ctx) -> dict:
    """Mean absolute difference of outputs and targets, in [0, 1]."""
    from genlab.metrics.translation import l1 as compute

    return _pixel_entry(ctx, "L1", compute(ctx.samples, ctx.targets), _versus_targets(ctx),
                        reduction="mean over pixels, channels and images")


@register_metric("cycle_l1", applies_to=[CYCLE], numbers={"cycle_l1": "value"},
                 columns=[Column("cycle_l1", "cycle L1", fixed("cycle_l1", 3))])
def cycle_l1(ctx) -> dict:
    """Mean absolute difference of the reconstructions G_BA(G_AB(input)) and the inputs, in [0, 1]."""
    from genlab.metrics.translation import l1 as compute

    return _pixel_entry(ctx, "cycle L1", compute(ctx.reconstructions, ctx.inputs),
                        "reconstructions G_BA(G_AB(input)) vs the first n test inputs",
                        reduction="mean over pixels, channels and images")


@register_metric("task_accuracy", applies_to=[ADAPTATION], numbers={"task_accuracy": "value"},
                 columns=[Column("task_accuracy", "task acc.", fixed("task_accuracy", 3))])
def task_accuracy(ctx) -> dict:
    """Share of the target domain's test images whose class the task classifier predicts."""
    predictions, labels = np.asarray(ctx.task_predictions), np.asarray(ctx.task_labels)
    if predictions.shape != labels.shape or predictions.ndim != 1 or len(labels) == 0:
        raise ValueError(f"task_accuracy: task_predictions {predictions.shape} and task_labels {labels.shape} must "
                         f"be one per test target image; re-run the evaluate stage")
    return {"value": float((predictions == labels).mean()), "n": int(len(labels)), "predictions": ctx.task_classifier,
            "compared": "predicted class vs the label of every test target image"}
