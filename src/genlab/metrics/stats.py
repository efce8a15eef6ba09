"""Comparing generative models as distributions over training seeds.

A model is trained under several seeds; each seed gives one score of a *rank key* (e.g. KID) where
LOWER IS BETTER. A model is therefore a 1-D sample of per-seed scores, not one number, and two models
are compared as two such samples (Lucic et al. 2018, "Are GANs Created Equal? A Large-Scale Study",
NeurIPS; Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice", NeurIPS; Bouthillier et al. 2021, "Accounting for Variance in Machine Learning
Benchmarks", MLSys).

Two different "±" appear in a report, and they mean different things:

* **training-seed spread** -- ``summarize(values)["std"]``: the sample standard deviation (ddof=1)
  of a model's scores over its training seeds. It says how much the *model* (its training run)
  varies; it is what `p_better`, `clearly_better`, `rank_groups` and `rank_intervals` reason over.
* **estimator noise** -- the spread of the metric itself on a fixed set of samples (e.g. KID's std
  over subsets, or `reference_spread`: the std of a baseline's score over disjoint subsets of real
  data). It says how precisely one score is *measured*, and is the ``margin`` below which a
  difference in mean is not taken as real.

Decisions:

* `p_better(a, b)` is the Mann-Whitney probability that a seed of A beats a seed of B (ties 1/2).
* `clearly_better` follows Bouthillier et al.: P(A better) >= 0.75 *and* the gap in mean exceeds
  the estimator noise (``margin``).
* `rank_groups`: sorted by mean, a new group starts between adjacent models exactly when the upper
  one clearly beats the lower one (a chain rule: non-adjacent models are not compared).
* `rank_intervals`: percentile bootstrap over seeds of each model's rank (Agarwal et al.).

Non-finite values (NaN, None, +-inf) are dropped everywhere before any computation; a model left
with no finite score is left out of every result keyed by model.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "clearly_better",
    "order_disagreements",
    "p_better",
    "point_ranks",
    "rank_groups",
    "rank_intervals",
    "reference_spread",
    "spearman",
    "summarize",
]


def _finite(values: ArrayLike | None) -> np.ndarray:
    """The finite values of `values` as a 1-D float array (None, NaN and +-inf dropped)."""
    if values is None:
        return np.empty(0)
    if np.isscalar(values):
        values = [values]
    cleaned = [np.nan if v is None else v for v in np.asarray(values, dtype=object).ravel()]
    arr = np.asarray(cleaned, dtype=float)
    return arr[np.isfinite(arr)]


def _finite_scores(scores: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """Each model's finite scores, in sorted name order; models with none left out."""
    cleaned = {name: _finite(scores[name]) for name in sorted(scores)}
    return {name: v for name, v in cleaned.items() if v.size}


def _finite_value(value: Any) -> float | None:
    """`value` as a float when it is a finite number, else None."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _order(means: Mapping[str, float]) -> list[str]:
    """Names by ascending mean (best first), ties broken by name."""
    return sorted(means, key=lambda name: (means[name], name))


def summarize(values: ArrayLike | None) -> dict[str, float | int | None]:
    """`mean`, `std` (ddof=1; 0.0 for one value), `min`, `max` and `n` of the finite values.

    For no finite value, `n` is 0 and every other key is None.
    """
    v = _finite(values)
    if not v.size:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    std = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "std": std, "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def p_better(a: ArrayLike, b: ArrayLike) -> float:
    """P(A beats B): the share of seed pairs (i, j) with a[i] < b[j], ties counting 1/2 (lower is better).

    Raises ValueError when either side has no finite value.
    """
    x, y = _finite(a), _finite(b)
    if not x.size or not y.size:
        raise ValueError("p_better needs at least one finite score on each side")
    lt = (x[:, None] < y[None, :]).mean()
    eq = (x[:, None] == y[None, :]).mean()
    return float(lt + 0.5 * eq)


def clearly_better(a: ArrayLike, b: ArrayLike, *, margin: float, threshold: float = 0.75) -> bool:
    """True when p_better(a, b) >= threshold and mean(b) - mean(a) > margin.

    `margin` is the estimator noise of the rank key (see `reference_spread`), a non-negative float.
    False when either side has fewer than two finite values: one training run says nothing about how
    far another seed would move it, so it cannot be told apart from its neighbours.
    """
    if not (margin >= 0 and math.isfinite(margin)):
        raise ValueError(f"margin must be a finite non-negative float, got {margin!r}")
    x, y = _finite(a), _finite(b)
    if x.size < 2 or y.size < 2:
        return False
    return p_better(x, y) >= threshold and float(y.mean() - x.mean()) > margin


def rank_groups(scores: Mapping[str, ArrayLike], *, margin: float, threshold: float = 0.75) -> dict[str, int]:
    """Group numbers (1 = best group) of the models, ordered by mean score (ties broken by name).

    Walking down that order, a boundary falls between adjacent models exactly when the upper one is
    `clearly_better` than the lower one; models with no finite score are left out.
    """
    cleaned = _finite_scores(scores)
    order = _order({name: float(v.mean()) for name, v in cleaned.items()})
    groups: dict[str, int] = {}
    group = 1
    for upper, lower in zip([None, *order[:-1]], order):
        if upper is not None and clearly_better(cleaned[upper], cleaned[lower], margin=margin,
                                                threshold=threshold):
            group += 1
        groups[lower] = group
    return groups


def point_ranks(scores: Mapping[str, ArrayLike]) -> dict[str, int]:
    """Rank of each model by mean score (1 = best, lowest mean; ties broken by name)."""
    cleaned = _finite_scores(scores)
    order = _order({name: float(v.mean()) for name, v in cleaned.items()})
    return {name: rank for rank, name in enumerate(order, start=1)}


def rank_intervals(scores: Mapping[str, ArrayLike], *, resamples: int = 1000, seed: int = 0,
                   level: float = 0.95) -> dict[str, tuple[int, int]]:
    """Bootstrap interval of each model's rank (1 = best), resampling each model's seeds.

    With ``rng = np.random.default_rng(seed)``, models are visited in sorted name order and each draws
    its `resamples` x n seed indices (with replacement) in one call, so the result is deterministic.
    In each resample the models' means are given ordinal ranks (ties broken by name); a model's
    interval is the (1-level)/2 quantile (method "lower") and the 1-(1-level)/2 quantile (method
    "higher") of its ranks. A model with one seed keeps its value but may still move in rank.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    cleaned = _finite_scores(scores)
    names = list(cleaned)  # sorted: column order == name order, so a stable sort breaks ties by name
    if not names:
        return {}
    rng = np.random.default_rng(seed)
    means = np.column_stack([v[rng.integers(0, v.size, size=(resamples, v.size))].mean(axis=1)
                             for v in cleaned.values()])
    order = np.argsort(means, axis=1, kind="stable")
    ranks = np.argsort(order, axis=1, kind="stable") + 1
    alpha = (1 - level) / 2
    return {name: (int(np.quantile(ranks[:, m], alpha, method="lower")),
                   int(np.quantile(ranks[:, m], 1 - alpha, method="higher")))
            for m, name in enumerate(names)}


def reference_spread(values: ArrayLike) -> float:
    """Std (ddof=1) of a baseline's scores over disjoint real subsets: the `margin` for `clearly_better`.

    It measures the estimator noise of the rank key; 0.0 for fewer than 2 finite values.
    """
    v = _finite(values)
    return float(np.std(v, ddof=1)) if v.size >= 2 else 0.0


def order_disagreements(key_ranks: Mapping[str, tuple[int, int]], other: Mapping[str, float]) -> dict[str, bool]:
    """Per model, whether its rank by `other` (lower is better) falls outside its rank-key interval.

    `other` is ranked among the models present in both mappings with a finite value (pass the same
    models as `key_ranks`, or the ranks are not on one scale); the others are left out. A model tied
    in `other` spans the ranks its tie group occupies, and disagrees only when that whole span lies
    outside its interval.
    """
    values = {name: f for name in key_ranks if name in other and (f := _finite_value(other[name])) is not None}
    v = np.array(list(values.values()))
    result: dict[str, bool] = {}
    for name, x in values.items():
        best, worst = 1 + int((v < x).sum()), int((v <= x).sum())
        lo, hi = key_ranks[name]
        result[name] = worst < lo or best > hi
    return result


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of `x`, ties given the average of the ranks they span."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2)[inverse]


def spearman(x: Mapping[str, float], y: Mapping[str, float]) -> float | None:
    """Spearman rank correlation over the keys finite in both (average ranks for ties).

    None for fewer than 3 common keys, or when either side is constant (the correlation is undefined).
    """
    pairs = [(fx, fy) for k in x if k in y
             and (fx := _finite_value(x[k])) is not None and (fy := _finite_value(y[k])) is not None]
    if len(pairs) < 3:
        return None
    rx, ry = (_average_ranks(np.array(col)) for col in zip(*pairs))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx ** 2).sum() * (ry ** 2).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else None
