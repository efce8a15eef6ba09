"""The memorization check as the evaluate stage computes it (the registered `memorization` metric): a
"model" whose samples are training images is flagged as copying, one whose samples are new images of the
same distribution is not, and the record keeps the samples nearest the training split with their
nearest training images (what the report shows side by side)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from evalfiles import EVAL_CFG, EVALUATOR_CFG, blobs, labels_of, write_packed
from genlab.data.hdf5 import read_split
from genlab.metrics.evaluate import EvalContext, EvaluatorFiles, evaluate, train_evaluator


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("memorization")
    packed = write_packed(root / "blobs.h5", "blobs", n_train=600, n_test=300)
    evaluator = EvaluatorFiles(root / "clf.pt", root / "test-clf.h5", root / "train-clf.h5")
    train_evaluator(packed, evaluator.classifier, evaluator.features, EVALUATOR_CFG, seed=0,
                    train_features_path=evaluator.train_features)
    return packed, evaluator


def memorization(samples: np.ndarray, labels: np.ndarray, evaluator: EvaluatorFiles) -> dict:
    ctx = EvalContext(samples, evaluator.features, evaluator, EVAL_CFG, 0, labels=labels)  # real: unused here
    return evaluate(ctx, ["memorization"])["memorization"]


def test_samples_that_are_training_images_are_flagged_as_copying(dataset):
    packed, evaluator = dataset
    train, labels = read_split(packed, "train")
    entry = memorization(train[:300], labels[:300], evaluator)
    assert entry["copying"] and entry["c_t"] < -3, entry
    assert entry["median_ratio"] == pytest.approx(0.0, abs=1e-6)  # each sample's nearest training image: itself
    assert entry["nearest"]["train"][:5] == entry["nearest"]["sample"][:5]  # sample i is training image i
    assert entry["n_train"] == 600 and entry["n_test"] == 300


def test_new_images_of_the_same_distribution_are_not_flagged(dataset):
    _, evaluator = dataset
    labels = labels_of(300, 99)
    entry = memorization(blobs(labels, 28, 1, 99), labels, evaluator)  # neither train nor test images
    assert not entry["copying"] and entry["c_t"] > -3, entry
    assert entry["median_ratio"] > 0.5
    assert len(entry["nearest"]["sample"]) == 16 and entry["nearest"]["distance"] == sorted(entry["nearest"]["distance"])


def test_without_training_features_the_check_is_null_with_the_reason(dataset):
    packed, evaluator = dataset
    train, labels = read_split(packed, "train")
    entry = memorization(train[:50], labels[:50], EvaluatorFiles(evaluator.classifier, evaluator.features))
    assert entry["c_t"] is None and "training" in entry["reason"]


def test_the_evaluator_stores_the_copying_reference_for_its_seed(dataset):
    """The reference fitted on the stored training and test features for the evaluator's seed comes back
    whole from the training features file (C_T the same to the last bit); for another seed nothing does."""
    from genlab.metrics.features import load_features, load_statistics
    from genlab.metrics.neighbours import copying_reference, data_copying, stored_copying_reference

    _, evaluator = dataset
    train, _ = load_features(evaluator.train_features)
    test, _ = load_features(evaluator.features)
    stats = load_statistics(evaluator.train_features)
    stored = stored_copying_reference(train, len(test), stats, seed=0)
    fitted = copying_reference(train, test, seed=0)
    assert np.array_equal(stored.centres.numpy(), fitted.centres.numpy())
    assert np.array_equal(stored.test_cell, fitted.test_cell) and np.array_equal(stored.test_d, fitted.test_d)
    generated = train[:150] + 0.01
    same = [json.dumps(data_copying(generated, reference=r), sort_keys=True) for r in (stored, fitted)]  # NaN cells
    assert same[0] == same[1]
    assert stored_copying_reference(train, len(test), stats, seed=1) is None
    assert stored_copying_reference(train, len(test) - 1, stats, seed=0) is None
