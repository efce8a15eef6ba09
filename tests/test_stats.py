"""genlab.metrics.stats: seed distributions compared on synthetic scores with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from genlab.metrics.stats import (
    clearly_better,
    order_disagreements,
    p_better,
    point_ranks,
    rank_groups,
    rank_intervals,
    reference_spread,
    spearman,
    summarize,
)

LOW = [1.0, 1.1, 0.9]
HIGH = [5.0, 5.2, 4.8]
TOP = [9.0, 9.3, 8.7]


# --------------------------------------------------------------------------- summarize
def test_summarize_drops_nan_and_none_and_uses_ddof_1():
    s = summarize([1.0, float("nan"), 2.0, None, 3.0])
    assert s == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "n": 3}  # ddof=0 would give 0.816


def test_summarize_one_value_and_empty():
    assert summarize([4.0])["std"] == 0.0
    assert summarize([4.0])["n"] == 1
    assert summarize([float("nan"), None]) == {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    assert summarize([])["n"] == 0


# --------------------------------------------------------------------------- p_better / clearly_better
def test_p_better_separated_is_one_and_zero():
    assert p_better(LOW, HIGH) == 1.0
    assert p_better(HIGH, LOW) == 0.0


def test_p_better_counts_ties_as_half():
    assert p_better([1.0], [1.0]) == 0.5
    # pairs: 1<2, 1<3, 2==2 (1/2), 2<3 -> 3.5 / 4
    assert p_better([1.0, 2.0], [2.0, 3.0]) == pytest.approx(3.5 / 4)
    assert p_better([1.0, 2.0], [2.0, 3.0]) + p_better([2.0, 3.0], [1.0, 2.0]) == pytest.approx(1.0)


def test_p_better_overlapping():
    # a=[1,2,3], b=[1.5,2.5,3.5]: wins 3 + 2 + 1 = 6 of 9
    assert p_better([1, 2, 3], [1.5, 2.5, 3.5]) == pytest.approx(6 / 9)


def test_p_better_empty_raises():
    with pytest.raises(ValueError):
        p_better([float("nan")], [1.0])


def test_clearly_better_needs_probability_and_margin():
    assert clearly_better(LOW, HIGH, margin=0.0)
    assert not clearly_better(HIGH, LOW, margin=0.0)
    assert not clearly_better(LOW, HIGH, margin=4.0)  # gap in mean is exactly 4.0: not > margin
    assert clearly_better(LOW, HIGH, margin=3.9)
    assert not clearly_better([1, 2, 3], [1.5, 2.5, 3.5], margin=0.0)  # p = 2/3 < 0.75
    assert clearly_better([1, 2, 3], [1.5, 2.5, 3.5], margin=0.0, threshold=0.6)


def test_clearly_better_threshold_is_inclusive():
    # pairs: 1<1.5, 1<3, 2>1.5, 2<3 -> p = 3/4 exactly; gap in mean 0.75
    assert p_better([1.0, 2.0], [1.5, 3.0]) == 0.75
    assert clearly_better([1.0, 2.0], [1.5, 3.0], margin=0.0)
    assert not clearly_better([1.0, 2.0], [1.5, 3.0], margin=0.0, threshold=0.76)


def test_clearly_better_rejects_negative_margin():
    with pytest.raises(ValueError):
        clearly_better(LOW, HIGH, margin=-1.0)


# --------------------------------------------------------------------------- rank_groups
def test_rank_groups_separated_models_land_in_different_groups():
    assert rank_groups({"b": HIGH, "a": LOW}, margin=0.0) == {"a": 1, "b": 2}


def test_rank_groups_overlapping_models_share_a_group():
    assert rank_groups({"a": [1, 2, 3], "b": [1.5, 2.5, 3.5]}, margin=0.0) == {"a": 1, "b": 1}


def test_rank_groups_big_margin_merges_separated_models():
    assert rank_groups({"a": LOW, "b": HIGH}, margin=10.0) == {"a": 1, "b": 1}


def test_rank_groups_chain():
    groups = rank_groups({"c": TOP, "a": LOW, "b": HIGH}, margin=0.0)
    assert groups == {"a": 1, "b": 2, "c": 3}
    assert list(groups) == ["a", "b", "c"]  # best first


def test_rank_groups_only_adjacent_boundaries():
    # a and c are far apart, but each neighbour pair overlaps: no boundary anywhere.
    scores = {"a": [1, 2, 3], "b": [1.5, 2.5, 3.5], "c": [2, 3, 4]}
    assert rank_groups(scores, margin=0.0) == {"a": 1, "b": 1, "c": 1}


def test_rank_groups_leaves_out_models_without_finite_scores():
    groups = rank_groups({"a": LOW, "b": [float("nan"), None], "c": []}, margin=0.0)
    assert groups == {"a": 1}


# --------------------------------------------------------------------------- point ranks / intervals
def test_point_ranks_by_mean_ties_by_name():
    assert point_ranks({"z": HIGH, "a": LOW, "m": HIGH, "gone": [float("nan")]}) == {"a": 1, "m": 2, "z": 3}


def test_rank_intervals_separated_models_are_degenerate():
    intervals = rank_intervals({"c": TOP, "a": LOW, "b": HIGH}, resamples=200)
    assert intervals == {"a": (1, 1), "b": (2, 2), "c": (3, 3)}


def test_rank_intervals_overlapping_models_overlap():
    rng = np.random.default_rng(1)
    scores = {"a": rng.normal(1.0, 1.0, 8), "b": rng.normal(1.2, 1.0, 8), "far": rng.normal(50.0, 1.0, 8)}
    intervals = rank_intervals(scores, resamples=500)
    (alo, ahi), (blo, bhi) = intervals["a"], intervals["b"]
    assert alo < ahi and blo < bhi  # both move between ranks 1 and 2
    assert max(alo, blo) <= min(ahi, bhi)  # the intervals overlap
    assert intervals["far"] == (3, 3)
    assert all(isinstance(end, int) for iv in intervals.values() for end in iv)


def test_rank_intervals_single_seed_model_still_gets_an_interval():
    # "one" never moves (one seed at 2.0); "spread" straddles it, so "one" ranks 1 or 2.
    intervals = rank_intervals({"one": [2.0], "spread": [0.0, 4.0, 0.5, 3.5]}, resamples=500)
    assert intervals["one"] == (1, 2)
    assert intervals["spread"] == (1, 2)


def test_rank_intervals_ties_broken_by_name():
    names = [f"m{i:02d}" for i in range(25)]
    intervals = rank_intervals({name: [3.0] for name in reversed(names)}, resamples=50)
    assert intervals == {name: (k, k) for k, name in enumerate(names, start=1)}


def test_rank_intervals_ends_are_lower_and_higher_quantiles():
    # "one" (2.0) ranks 2 only in the resamples where "spread" draws index 0 twice (mean 0 < 2); a tie
    # at mean 2 goes to "one" by name. Replay the documented draws to find a seed with exactly one
    # such resample in 10: the ends (methods "lower" / "higher") must then reach it.
    resamples = 10
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        rng.integers(0, 1, size=(resamples, 1))  # "one" draws first (sorted name order)
        worst = int((rng.integers(0, 2, size=(resamples, 2)).sum(axis=1) == 0).sum())
        if worst == 1:
            break
    else:
        pytest.fail("no seed with exactly one rank-2 resample")
    scores = {"one": [2.0], "spread": [0.0, 10.0]}
    wide = rank_intervals(scores, resamples=resamples, seed=seed, level=0.999)
    assert wide == {"one": (1, 2), "spread": (1, 2)}  # "spread" is rank 1 once: the lower end reaches it
    assert rank_intervals(scores, resamples=resamples, seed=seed, level=0.5)["one"] == (1, 1)


def test_rank_intervals_deterministic_and_seed_dependent():
    rng = np.random.default_rng(2)
    scores = {name: rng.normal(0.0, 1.0, 5) for name in "abcdef"}
    first = rank_intervals(scores, resamples=300, seed=7)
    assert rank_intervals(dict(reversed(list(scores.items()))), resamples=300, seed=7) == first
    runs = [rank_intervals(scores, resamples=20, seed=s, level=0.5) for s in range(10)]
    assert any(run != runs[0] for run in runs)  # the seed does drive the resampling


def test_rank_intervals_level_widens():
    rng = np.random.default_rng(3)
    scores = {name: rng.normal(0.0, 1.0, 5) for name in "abcd"}
    narrow = rank_intervals(scores, level=0.5)
    wide = rank_intervals(scores, level=0.99)
    for name in scores:
        assert wide[name][0] <= narrow[name][0] and narrow[name][1] <= wide[name][1]
    assert wide != narrow


def test_rank_intervals_rejects_bad_arguments():
    with pytest.raises(ValueError):
        rank_intervals({"a": LOW}, level=1.0)
    with pytest.raises(ValueError):
        rank_intervals({"a": LOW}, resamples=0)


# --------------------------------------------------------------------------- reference_spread
def test_reference_spread_known_values():
    assert reference_spread([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) == pytest.approx(math.sqrt(32 / 7))
    assert reference_spread([1.0, float("nan"), 3.0]) == pytest.approx(math.sqrt(2.0))
    assert reference_spread([3.0]) == 0.0
    assert reference_spread([]) == 0.0


# --------------------------------------------------------------------------- order_disagreements
def test_order_disagreements_flags_a_model_outside_its_interval():
    key_ranks = {"a": (1, 1), "b": (2, 3), "c": (2, 3)}
    other = {"a": 30.0, "b": 10.0, "c": 20.0}  # by `other`: b=1, c=2, a=3
    assert order_disagreements(key_ranks, other) == {"a": True, "b": True, "c": False}


def test_order_disagreements_agreement_and_ties():
    key_ranks = {"a": (1, 1), "b": (2, 2), "c": (3, 3)}
    assert order_disagreements(key_ranks, {"a": 1.0, "b": 2.0, "c": 3.0}) == {"a": False, "b": False, "c": False}
    # a and b tie on `other` (ranks 1-2): neither disagrees; missing / NaN models are left out.
    assert order_disagreements(key_ranks, {"a": 5.0, "b": 5.0, "c": float("nan")}) == {"a": False, "b": False}


# --------------------------------------------------------------------------- spearman
def test_spearman_reversed_is_minus_one_and_same_is_one():
    x = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    assert spearman(x, {"a": 40.0, "b": 30.0, "c": 20.0, "d": 10.0}) == pytest.approx(-1.0)
    assert spearman(x, {"a": 0.1, "b": 0.2, "c": 0.9, "d": 7.0}) == pytest.approx(1.0)


def test_spearman_ties_use_average_ranks():
    # y ranks: 1.5, 1.5, 3, 4 against x ranks 1..4 -> rho = 4.5 / sqrt(5 * 4.5)
    rho = spearman({"a": 1, "b": 2, "c": 3, "d": 4}, {"a": 1, "b": 1, "c": 2, "d": 3})
    assert rho == pytest.approx(4.5 / math.sqrt(5 * 4.5))


def test_spearman_common_finite_keys_and_too_few():
    x = {"a": 1.0, "b": 2.0, "c": 3.0, "d": float("nan"), "e": 9.0}
    y = {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.0}
    assert spearman(x, y) == pytest.approx(-1.0)  # over a, b, c only
    assert spearman({"a": 1.0, "b": 2.0}, {"a": 2.0, "b": 1.0}) is None
    assert spearman({"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 1.0, "b": 2.0, "c": 3.0}) is None


def test_one_seed_is_never_clearly_better():
    """A single training run says nothing about how far another seed would move it."""
    assert not clearly_better([1.0], [5.0, 5.1, 4.9], margin=0.0)
    assert not clearly_better([1.0, 1.1], [5.0], margin=0.0)
    assert clearly_better([1.0, 1.1], [5.0, 5.1], margin=0.0)
