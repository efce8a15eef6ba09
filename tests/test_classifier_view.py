"""The classifier view on real Fashion-MNIST: IS, class histogram and conditional accuracy."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genlab.data.download import download_dataset
from genlab.data.hdf5 import pack_dataset, read_split
from genlab.data.sources import default_preprocessing
from genlab.metrics.classifier import classifier_view
from genlab.metrics.evaluate import train_evaluator
from genlab.metrics.features import load_real_features

MIRROR = Path("/usr/share/datasets/fashion-mnist")
pytestmark = pytest.mark.skipif(not MIRROR.exists(), reason="needs `apt-get install dataset-fashion-mnist`")


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluator")
    download_dataset("fashion-mnist", root / "raw", local_dirs=[str(MIRROR)], mirrors=[])
    packed = root / "fashion-mnist.h5"
    pack_dataset("fashion-mnist", root / "raw", packed, default_preprocessing("fashion-mnist"))
    weights, features = root / "classifier.pt", root / "classifier-features.h5"
    cfg = {"epochs": 1, "batch_size": 64, "lr": 1e-3, "train_limit": 6000, "min_accuracy": 0.85}
    record = train_evaluator(packed, weights, features, cfg, seed=0, device="cpu")
    real_penultimate, _ = load_real_features(features)  # with the statistics the evaluator stored, as evaluate reads them
    test_images, test_labels = read_split(packed, "test")
    return {"record": record, "weights": weights, "real": real_penultimate,
            "images": test_images, "labels": test_labels}


def view(evaluator, images, labels=None):
    return classifier_view(images, labels, evaluator["weights"], evaluator["real"], seed=0)


def test_classifier_learns_the_dataset(evaluator):
    assert evaluator["record"]["test_accuracy"] > 0.75  # 6000 images, one epoch
    assert evaluator["record"]["device"] == "cpu"  # where it trained (eval.device), recorded
    assert evaluator["record"]["trusted"] == (evaluator["record"]["test_accuracy"] >= 0.85)


def test_an_untrusted_classifier_flags_every_value(evaluator, tmp_path):
    import torch

    blob = torch.load(evaluator["weights"], weights_only=False)
    blob.update(test_accuracy=0.42, trusted=False, reason="the dataset classifier reached only 0.420 test accuracy")
    untrusted = tmp_path / "untrusted.pt"
    torch.save(blob, untrusted)
    record = classifier_view(evaluator["images"][:50], evaluator["labels"][:50], untrusted, evaluator["real"], seed=0)
    assert record["classifier_fid"]["trusted"] is False and "0.420" in record["classifier_fid"]["reason"]
    assert record["conditional_accuracy"]["trusted"] is False
    assert record["classifier_fid"]["value"] is not None  # kept, but flagged


def test_unlabelled_dataset_gives_a_null_view_with_the_reason(tmp_path):
    from genlab.metrics.classifier import save_no_classifier

    path = tmp_path / "none.pt"
    save_no_classifier(path, "dataset lfw has no class labels")
    images = np.zeros((4, 3, 64, 64), np.uint8)
    record = classifier_view(images, None, path, np.zeros((0, 128), np.float32), seed=0)
    for key in ("classifier_is", "classifier_fid", "class_histogram", "conditional_accuracy"):
        assert record[key]["reason"] == "dataset lfw has no class labels", key
    assert record["classifier_fid"]["value"] is None and record["classifier_is"]["mean"] is None


def test_is_of_real_test_split_is_high_and_of_one_repeated_image_is_one(evaluator):
    real = view(evaluator, evaluator["images"][:2000])
    # 10 classes: a perfectly confident classifier gives 10; this one (6000 images, one epoch)
    # is less sure of itself, so "high" here means well over half the classes.
    assert real["classifier_is"]["mean"] > 5.0
    assert real["class_histogram"]["classes_covered"] == 10
    repeated = np.repeat(evaluator["images"][:1], 500, axis=0)
    one = view(evaluator, repeated)
    assert one["classifier_is"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert one["classifier_fid"]["value"] > real["classifier_fid"]["value"]


def test_single_class_set_covers_one_class(evaluator):
    images, labels = evaluator["images"], evaluator["labels"]
    trousers = images[labels == 1][:300]
    record = view(evaluator, trousers)
    counts = record["class_histogram"]["counts"]
    assert int(np.argmax(counts)) == 1 and counts[1] >= 0.9 * len(trousers)
    assert record["class_histogram"]["classes_covered"] <= 3  # a few misclassified trousers at most


@pytest.mark.slow  # the classifier view of all 10,000 test images: ~9 s on a 2-core AMD EPYC
def test_conditional_accuracy_of_the_whole_test_split_is_the_evaluators_test_accuracy(evaluator):
    true = view(evaluator, evaluator["images"], evaluator["labels"])
    assert true["conditional_accuracy"]["value"] == pytest.approx(evaluator["record"]["test_accuracy"], abs=1e-9)


def test_conditional_accuracy_is_the_share_classified_as_its_label_and_drops_with_shuffled_labels(evaluator):
    import torch

    from genlab.classifier_net import load_classifier, predict

    images, labels = evaluator["images"][:2000], evaluator["labels"][:2000]
    _, logits = predict(load_classifier(evaluator["weights"])[0], torch.from_numpy(images))
    agree = float((logits.argmax(1).numpy() == labels).mean())
    true = view(evaluator, images, labels)
    assert true["conditional_accuracy"]["value"] == pytest.approx(agree, abs=1e-9) and agree > 0.75
    # labels that have nothing to do with the images: chance, 1 in 10 (2000 images: the std is 0.007)
    shuffled = np.random.default_rng(0).permutation(evaluator["labels"])[:2000]
    wrong = view(evaluator, images, shuffled)
    assert abs(wrong["conditional_accuracy"]["value"] - 0.1) < 0.03


def test_unconditional_samples_record_why_there_is_no_conditional_accuracy(evaluator):
    record = view(evaluator, evaluator["images"][:100])
    assert record["conditional_accuracy"]["value"] is None and "unconditional" in record["conditional_accuracy"]["reason"]
