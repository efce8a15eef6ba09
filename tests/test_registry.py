"""The metric registry: its API, what it declares, and noise-to-image records identical to those the
evaluate code gave before the registry (tests/data/noise-record-before-registry.json, written by that
code for the same synthetic files)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalfiles import EVAL_CFG, blobs, labels_of, prepare, write_packed
from genlab.metrics import registry
from genlab.metrics.registry import (ADAPTATION, CYCLE, KINDS, NOISE, PAIRED, TRANSLATION, applicable, check_metrics,
                                     get_metric, is_valid_metric, list_valid_metrics, metrics, register_metric)

GOLDEN = Path(__file__).parent / "data" / "noise-record-before-registry.json"
NOISE_METRICS = ["fid", "kid", "precision_recall", "classifier_fid", "classifier_is", "class_histogram",
                 "conditional_accuracy", "inception_score", "density_coverage", "classifier_kid",
                 "classifier_precision_recall", "classifier_density_coverage", "memorization", "fid_inf"]
NOISE_ONLY = {"conditional_accuracy", "memorization", "fid_inf"}
TRANSLATION_ONLY = ["psnr", "ssim", "l1", "cycle_l1", "task_accuracy"]


def test_every_metric_is_listed_in_registration_order():
    assert list_valid_metrics() == NOISE_METRICS + TRANSLATION_ONLY
    assert all(is_valid_metric(name) for name in list_valid_metrics()) and not is_valid_metric("fid_n250")


def test_unknown_metric_names_are_refused_with_the_valid_ones():
    message = check_metrics(["fid", "lpips"])
    assert "eval.metrics" in message and "'lpips'" in message and "fid, kid, precision_recall" in message
    assert check_metrics(None) is None and check_metrics(["psnr", "fid"]) is None
    assert "expected a list" in check_metrics("fid")
    with pytest.raises(ValueError, match="unknown metric.*'nope'.*valid metrics: fid"):
        get_metric("nope")
    with pytest.raises(ValueError, match="'nope'"):
        applicable({NOISE}, ["nope"])


def test_every_metric_declares_kinds_numbers_columns_and_a_description():
    numbers = [number for metric in metrics() for number, _ in metric.numbers]
    assert len(numbers) == len(set(numbers))  # one name, one number, across the metrics file and MLflow
    for metric in metrics():
        assert metric.applies_to and metric.applies_to <= set(KINDS), metric.name
        assert metric.numbers and metric.doc, metric.name
        assert {c.number for c in metric.columns} <= {n for n, _ in metric.numbers}, metric.name


def test_which_metrics_apply_to_which_models():
    names = lambda kinds, wanted=None: [m.name for m in applicable(kinds, wanted)]  # noqa: E731
    assert names({NOISE}) == NOISE_METRICS
    generative = [n for n in NOISE_METRICS if n not in NOISE_ONLY]
    assert names({TRANSLATION}) == generative
    assert names({TRANSLATION, PAIRED, CYCLE, ADAPTATION}) == generative + TRANSLATION_ONLY
    assert names({TRANSLATION, CYCLE}) == generative + ["cycle_l1"]
    assert names({NOISE}, ["psnr", "kid", "fid"]) == ["fid", "kid"]  # registry order; psnr does not apply


def test_the_rank_key_must_be_a_registered_number_computed_for_every_section():
    from genlab.metrics.registry import rank_key_problem

    noise, paired = frozenset({NOISE}), frozenset({TRANSLATION, PAIRED})
    assert rank_key_problem("classifier_kid", None, {"fashion-mnist": noise, "edges": paired}) is None
    assert "allowed values" in rank_key_problem("lpips", None, {"fashion-mnist": noise})
    problem = rank_key_problem("psnr", None, {"fashion-mnist": noise, "edges": paired})
    assert "not computed for section(s) fashion-mnist" in problem and "classifier_kid" in problem
    assert "eval.metrics leaves classifier_kid out" in rank_key_problem("classifier_kid", ["fid"], {"f": noise})
    assert "not computed" in rank_key_problem("memorization_ct", None, {"edges": paired})


def test_registration_refuses_unknown_kinds_and_second_registrations():
    with pytest.raises(ValueError, match="applies_to.*'pictures'.*allowed kinds: noise"):
        register_metric("x", applies_to=["pictures"], numbers={"x": "value"})
    with pytest.raises(ValueError, match="registered twice"):
        register_metric("fid", applies_to=[NOISE], numbers={"fid2": "value"})(lambda ctx: {})
    assert list_valid_metrics() == NOISE_METRICS + TRANSLATION_ONLY


def test_numbers_come_from_the_record_entries_present():
    record = {"model": "m", "fid": {"value": 3.0, "n_fake": 10}, "kid": {"mean": 0.1, "std": 0.01, "n_fake": 10},
              "psnr": {"value": None, "reason": "infinite"}}
    assert registry.metric_numbers(record) == {"fid": 3.0, "kid_mean": 0.1, "kid_std": 0.01, "psnr": None}
    assert registry.mlflow_metrics(record) == {"fid": 3.0, "kid_mean": 0.1, "kid_std": 0.01, "fid_n10": 3.0,
                                               "kid_mean_n10": 0.1, "kid_std_n10": 0.01}


def _assert_same(actual, expected, path="record"):
    """Same keys and structure at every level; strings, ints, bools and nulls equal; floats equal up to the
    CPU's rounding. On the machine that wrote the file they are equal to the bit; on another CPU (AVX2
    against AVX-512 kernels) Inception on ONNX Runtime moves them by ~1e-7 relative, and the seeded
    dataset classifier, trained through the same kernels, by ~2e-3 (measured on an AVX2-only AMD EPYC)."""
    assert type(actual) is type(expected) or {type(actual), type(expected)} <= {int, float}, path
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), path
        for key in expected:
            _assert_same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        rel = 1e-2 if "classifier" in path else 1e-5
        assert actual == pytest.approx(expected, rel=rel, abs=1e-12), path
    else:
        assert actual == expected, path


@pytest.fixture
def golden_threads():
    """The golden file was written with 2 intra-op threads, the test runs with them: the seeded dataset
    classifier's values move by ~1% with the thread count (1.07% for classifier_fid at 1 thread)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.slow
def test_noise_to_image_records_are_those_of_the_code_before_the_registry(tmp_path, golden_threads):
    """The golden file was written by the code before the registry. Its classifier-IS/FID entries were
    rewritten once since, when the dataset classifier moved to channels_last (its weights, hence those
    two values, changed in the 5th significant digit); every other value is the original's."""
    from genlab.metrics.evaluate import evaluate_samples, metric_numbers, mlflow_metrics

    real, evaluator = prepare(tmp_path, write_packed(tmp_path / "blobs.h5", "blobs"))
    labels = labels_of(20, 7)
    samples = blobs(labels, 28, 1, 7)
    got = {}
    for case, case_labels in (("conditional", labels), ("unconditional", None)):
        record = json.loads(json.dumps(evaluate_samples(samples, case_labels, real, evaluator, EVAL_CFG, 0)))
        got[case] = {"record": record, "numbers": metric_numbers(record), "mlflow": mlflow_metrics(record)}
    golden = json.loads(GOLDEN.read_text())
    for case, expected in golden.items():  # the metrics of the code before the registry: unchanged
        for part, values in expected.items():
            _assert_same({k: got[case][part][k] for k in values}, values, f"{case}.{part}")
        assert {"classifier_kid", "density_coverage", "memorization"} <= set(got[case]["record"])
    for case in got.values():
        for name, entry in case["record"].items():  # every value with its protocol, or null with the reason
            assert len(entry) > len(get_metric(name).numbers) or entry.get("reason"), name


def _kinds_of(name: str, params) -> set[str]:
    """The kinds of model a committed record was evaluated as, from the default params: a model's
    type and task, or a baseline's dataset (reference) or task (identity: no reconstructions)."""
    from genlab.models import MODEL_TYPES

    if name.startswith("reference-"):
        source, cycle = name.removeprefix("reference-"), False
        if source in params.datasets:
            return {registry.NOISE}
    else:
        spec = params.models[name]
        cls = MODEL_TYPES[spec.type]
        if cls.trains_on == "dataset":
            return {registry.NOISE}
        source, cycle = spec.dataset, cls.cycle
    task = params.tasks[source]
    return ({registry.TRANSLATION} | ({registry.PAIRED} if task.paired else set())
            | ({registry.CYCLE} if cycle else set()) | ({registry.ADAPTATION} if task.source_labels else set()))


def test_committed_default_run_records_have_the_registry_structure():
    """The default run's committed records: each seed's metrics file (metrics/<m>/seed-<s>.json) is exactly
    the registry's numbers of its record, whose keys are the registered metrics that apply to the model
    (noise-to-image, or translation on its task); each model's and baseline's metrics file is the spread of
    its members' numbers (genlab.metrics.seeds.aggregate)."""
    from genlab.config import load_params
    from genlab.metrics.seeds import aggregate

    root = Path(__file__).parents[1] / "metrics"
    params = load_params(root.parent / "params.yaml")
    seed_files = sorted(root.glob("*/seed-*.protocol.json"))
    if not seed_files:
        pytest.skip("no committed per-seed metrics files")
    kinds_seen = set()
    for path in seed_files:
        record = json.loads(path.read_text())
        numbers = json.loads(path.with_name(path.name.replace(".protocol.json", ".json")).read_text())
        assert registry.metric_numbers(record) == numbers, path
        kinds = _kinds_of(path.parent.name, params)
        kinds_seen |= kinds
        expected = [m.name for m in registry.applicable(kinds)]
        assert sorted(set(record) - {"model", "seed", "train_precision"}) == sorted(expected), path
    for name in params.models:
        members = {s: json.loads((root / name / f"seed-{s}.protocol.json").read_text()) for s in params.seeds_of(name)}
        flat, _ = aggregate(members, "training seeds")
        assert json.loads((root / f"{name}.json").read_text()) == json.loads(json.dumps(flat)), name
    assert kinds_seen == set(registry.KINDS)  # the default run has a model of every kind
