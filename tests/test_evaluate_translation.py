"""Evaluation of image-to-image translation: a translation model's samples file (contract section 2)
and a task's identity baseline, on a tiny synthetic task (grey 14x14 inputs -> colour 28x28 targets,
paired, with input labels), real Inception and real classifiers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from evalfiles import EVAL_CFG, EVALUATOR_CFG, prepare, write_packed, write_translation_samples
from genlab.data.hdf5 import read_inputs, read_split
from genlab.data.tasks import to_target_geometry
from genlab.metrics import translation
from genlab.metrics.evaluate import (evaluate, evaluate_identity, metric_numbers, mlflow_metrics,
                                     SamplesFileError, samples_context)
from genlab.metrics.registry import get_metric

N = 16
GENERATIVE = {"fid", "kid", "precision_recall", "classifier_fid", "classifier_is", "class_histogram",
              "inception_score", "density_coverage", "classifier_kid", "classifier_precision_recall",
              "classifier_density_coverage"}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("task")
    path = write_packed(root / "grey2colour.h5", "grey2colour", channels=3,
                        inputs={"side": 14, "channels": 1, "paired": True, "input_labels": True})
    real, evaluator = prepare(root, path)
    inputs, _ = read_inputs(path, "test", limit=N)
    targets, labels = read_split(path, "test", limit=N)
    return {"root": root, "path": path, "real": real, "evaluator": evaluator, "inputs": inputs,
            "targets": targets, "test_labels": read_split(path, "test")[1]}


def shifted(images: np.ndarray, by: int) -> np.ndarray:
    return np.clip(images.astype(np.int16) + by, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def cycle_model_record(task):
    """A paired cycle model with a task classifier: every translation metric applies."""
    outputs, reconstructions = shifted(task["targets"], 20), shifted(task["inputs"], -10)
    predictions = task["test_labels"].copy()
    predictions[::4] = (predictions[::4] + 1) % 4  # a quarter wrong
    path = write_translation_samples(task["root"] / "cycle.h5", {
        "images": outputs, "inputs": task["inputs"], "targets": task["targets"], "reconstructions": reconstructions,
        "task_predictions": predictions, "task_labels": task["test_labels"]},
        {"model": "cycle", "type": "cyclegan", "n": N, "task": "grey2colour", "paired": True})
    ctx, info = samples_context(path, task["real"], task["evaluator"], EVAL_CFG, seed=0)
    return {"record": evaluate(ctx), "info": info, "outputs": outputs, "reconstructions": reconstructions,
            "predictions": predictions}


def test_a_paired_cycle_model_gets_every_translation_metric(task, cycle_model_record):
    record = cycle_model_record["record"]
    assert set(record) == GENERATIVE | {"psnr", "ssim", "l1", "cycle_l1", "task_accuracy"}  # no conditional accuracy
    assert record["fid"]["real_split"] == "grey2colour/test" and record["fid"]["n_fake"] == N
    outputs = cycle_model_record["outputs"]
    assert record["psnr"]["value"] == pytest.approx(translation.psnr(outputs, task["targets"]))
    assert record["ssim"]["value"] == pytest.approx(translation.ssim(outputs, task["targets"]))
    assert record["l1"]["value"] == pytest.approx(translation.l1(outputs, task["targets"]))
    assert 0 < record["l1"]["value"] <= 20 / 255
    assert record["cycle_l1"]["value"] == pytest.approx(translation.l1(cycle_model_record["reconstructions"],
                                                                       task["inputs"]))
    assert record["task_accuracy"]["value"] == pytest.approx(0.75, abs=0.05)
    assert record["task_accuracy"]["n"] == len(task["test_labels"])
    assert record["ssim"]["window"] == "gaussian 11x11, sigma 1.5" and record["psnr"]["data_range"] == 1
    numbers = metric_numbers(record)
    assert {"psnr", "ssim", "l1", "cycle_l1", "task_accuracy", "fid"} <= set(numbers)
    assert "conditional_accuracy" not in numbers and mlflow_metrics(record)[f"fid_n{N}"] == numbers["fid"]
    for name, entry in record.items():  # each with its protocol (or null with the reason)
        assert len(entry) > len(get_metric(name).numbers) or entry.get("reason"), name


def test_an_unpaired_model_without_extras_gets_the_generative_metrics_only(task):
    path = write_translation_samples(task["root"] / "unpaired.h5", {
        "images": shifted(task["targets"], 5), "inputs": task["inputs"], "targets": task["targets"]},
        {"model": "u", "type": "discogan", "n": N, "task": "grey2colour", "paired": False})
    ctx, _ = samples_context(path, task["real"], task["evaluator"], {**EVAL_CFG, "metrics": ["fid", "psnr"]}, 0)
    assert set(evaluate(ctx)) == GENERATIVE
    assert set(evaluate(ctx, ["fid", "psnr"])) == {"fid"}


def test_a_paired_samples_file_without_targets_names_what_is_missing(task):
    path = write_translation_samples(task["root"] / "broken.h5", {"images": task["targets"], "inputs": task["inputs"]},
                                     {"model": "b", "type": "pix2pix", "n": N, "task": "grey2colour", "paired": True})
    with pytest.raises(SamplesFileError, match=r"no `targets` dataset; re-run `dvc repro evaluate@"):
        samples_context(path, task["real"], task["evaluator"], EVAL_CFG, 0)


def test_a_truncated_samples_file_is_one_line_naming_the_stage_to_re_run(task, tmp_path):
    whole = write_translation_samples(task["root"] / "whole.h5", {"images": task["targets"], "inputs": task["inputs"],
                                                                  "targets": task["targets"]},
                                      {"model": "p", "type": "pix2pix", "n": N, "task": "grey2colour", "paired": True})
    cut = tmp_path / "samples" / "p2p" / "seed-0.h5"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(SamplesFileError) as err:
        samples_context(cut, task["real"], task["evaluator"], EVAL_CFG, 0)
    message = str(err.value)
    assert message.startswith(f"{cut}: unreadable samples file (OSError: ") and "\n" not in message
    assert message.endswith("re-run `dvc repro evaluate@p2p`")


@pytest.fixture(scope="module")
def identity_record(task):
    return evaluate_identity(task["path"], N, task["real"], task["evaluator"], EVAL_CFG, EVALUATOR_CFG, seed=0)


def test_identity_baseline_scores_the_inputs_brought_to_the_targets_geometry(task, identity_record):
    record = identity_record
    assert set(record) == GENERATIVE | {"psnr", "ssim", "l1", "task_accuracy"}
    identity = to_target_geometry(task["inputs"], (3, 28, 28))
    assert record["psnr"]["value"] == pytest.approx(translation.psnr(identity, task["targets"]))
    assert record["l1"]["value"] == pytest.approx(translation.l1(identity, task["targets"]))
    assert "identity" in record["psnr"]["compared"] and record["fid"]["n_fake"] == N
    accuracy = record["task_accuracy"]
    assert 0.0 <= accuracy["value"] <= 1.0 and accuracy["n"] == len(task["test_labels"])
    assert accuracy["predictions"].startswith("source-only genlab-classifier")


@pytest.mark.slow  # a second identity baseline: ~5 s on a 2-core AMD EPYC
def test_the_identity_baseline_of_one_file_and_seed_is_the_same_record(task, identity_record):
    # a reference stage's output is byte-stable
    again = evaluate_identity(task["path"], N, task["real"], task["evaluator"], EVAL_CFG, EVALUATOR_CFG, seed=0)
    assert json.dumps(again, sort_keys=True) == json.dumps(identity_record, sort_keys=True)

