"""Same params, same experiment: precision is explicit, resolved visibly, and fp32 means IEEE fp32."""
from __future__ import annotations

import pytest
import torch

from genlab.config import parse_params
from genlab import device as device_mod
from genlab.device import autocast, ieee_fp32, resolve_precision

MINIMAL = {"models": {"gan": {"type": "gan"}}}


def test_precision_defaults_are_fp32_for_training_and_for_the_inception_pass():
    params = parse_params(MINIMAL)
    assert params.train["precision"] == "fp32" and params.eval["precision"] == "fp32"


def test_default_params_yaml_names_both_precisions():
    import yaml

    from projects import REPO

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert raw["train"]["precision"] == "fp32" and raw["eval"]["precision"] == "fp32"


def test_explicit_precisions_resolve_to_themselves_on_any_hardware(monkeypatch):
    for fast in (True, False):
        monkeypatch.setattr(device_mod, "cpu_has_fast_bf16", lambda fast=fast: fast)
        assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
        assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_auto_is_the_one_setting_that_depends_on_the_machine(monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(device_mod, "cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_fp32_turns_tf32_off_for_its_duration_and_restores_it():
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = (matmul.fp32_precision, conv.fp32_precision)
    conv.fp32_precision = "tf32"  # PyTorch's default for cuDNN convolutions
    try:
        with autocast(torch.device("cpu"), "fp32"):
            assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
        assert conv.fp32_precision == "tf32"
        with pytest.raises(RuntimeError), ieee_fp32():
            raise RuntimeError("restored on errors too")
        assert conv.fp32_precision == "tf32"
    finally:
        matmul.fp32_precision, conv.fp32_precision = before


def test_inception_features_are_fp32_unless_asked_and_the_protocol_says_which():
    from genlab.metrics.inception import eval_settings
    from genlab.metrics.inception import InceptionV3TFFidHelper

    import inspect

    from genlab.metrics.features import extract_features

    for fn in (InceptionV3TFFidHelper.__init__, extract_features):
        assert inspect.signature(fn).parameters["precision"].default == "fp32", fn
    params = parse_params(MINIMAL)
    device, precision, _ = eval_settings(params.eval)
    assert precision == "fp32"


def test_leaderboard_labels_anything_but_fp32():
    import pandas as pd

    from genlab.reporting.leaderboard import _precision_label

    row = pd.Series({"train_precision": "bf16", "compute_precision": "fp32"})
    assert _precision_label(row) == " (bf16 training)"
    row = pd.Series({"train_precision": "fp32", "compute_precision": "bf16"})
    assert _precision_label(row) == " (bf16 features)"
    assert _precision_label(pd.Series({"train_precision": "fp32", "compute_precision": "fp32"})) == ""


@pytest.fixture
def cuda_flags(monkeypatch):
    """A machine that says it has CUDA; torch's global flags restored afterwards."""
    import os

    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (matmul.fp32_precision, cudnn.conv.fp32_precision, cudnn.deterministic, cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cudnn.conv.fp32_precision = "tf32"  # PyTorch's default for cuDNN convolutions
    yield os.environ
    matmul.fp32_precision, cudnn.conv.fp32_precision, cudnn.deterministic, cudnn.benchmark = saved[:4]
    torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])


def test_resolving_cuda_makes_the_whole_process_ieee_fp32_and_deterministic(cuda_flags):
    assert device_mod.resolve_device("auto").type == "cuda"
    # outside any autocast region too: sampling, selection scores, the evaluator, feature extractors
    assert torch.backends.cuda.matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled()
    assert cuda_flags["CUBLAS_WORKSPACE_CONFIG"] == device_mod.CUBLAS_WORKSPACE
    assert device_mod.cuda_settings() == {"fp32_precision": "ieee", "cudnn_deterministic": True,
                                          "deterministic_algorithms": True, "cublas_workspace": ":4096:8"}


def test_cpu_runs_leave_the_global_flags_alone(monkeypatch):
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.conv.fp32_precision
    assert device_mod.resolve_device("cpu").type == "cpu"
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.conv.fp32_precision) == before


def test_more_processes_than_visible_gpus_are_refused_before_torchrun(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    problem = device_mod.processes_problem(2, torch.device("cuda"))
    assert problem.startswith("got 2, but 1 CUDA device is visible") and "at most 1" in problem
    assert device_mod.processes_problem(1, torch.device("cuda")) is None
    assert device_mod.processes_problem(4, torch.device("cpu")) is None  # gloo processes share the CPU


def test_a_checkpoint_fingerprint_holds_what_auto_resolved_to_not_the_word(cuda_flags, monkeypatch):
    from genlab.training.plan import fingerprint

    def fp(device, precision):
        params = parse_params({"train": {"device": device, "precision": precision}, "models": {"m": {"type": "gan"}}})
        return fingerprint(params, "m", "data-md5")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_mod, "cpu_has_fast_bf16", lambda: False)
    assert fp("auto", "auto") == fp("cpu", "fp32")  # this machine: the same experiment, resumable
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert fp("auto", "auto") == fp("cuda", "bf16") != fp("cpu", "fp32")  # a GPU: visibly another


def test_auto_eval_settings_follow_the_real_features_on_a_machine_that_would_pick_otherwise(cuda_flags, monkeypatch):
    from genlab.metrics.inception import eval_settings

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    auto = {"device": "auto", "precision": "auto", "runtime": "auto"}
    assert eval_settings(auto) == ("cuda", "bf16", "torch")  # what this GPU machine picks by itself
    made_on_a_cpu = {"precision": "fp32", "runtime": "onnxruntime"}
    assert eval_settings(auto, made_on_a_cpu) == ("cpu", "fp32", "onnxruntime")
    # an explicit setting is the user's: kept (and the mismatch with the real features is then an error)
    assert eval_settings({**auto, "precision": "bf16"}, made_on_a_cpu) == ("cuda", "bf16", "torch")


def test_a_cuda_trained_run_is_audited_within_the_tolerance_not_by_bytes():
    """The audit holds a CUDA-trained seed to its metrics within the tolerance, never to bytes, and its
    JSON states the rule, the tolerance and the CUDA flags the run trained with; a CPU run on the same
    kind of machine is still held to bytes."""
    from genlab.audit import _same_kind, cuda_rule
    from genlab.audit.locate import RunLineage
    from genlab.tracking.lineage import environment

    stages = {f"{kind}@dcgan": {"environment": environment()} for kind in ("train", "evaluate")}
    flags = {"train.cuda.cudnn_deterministic": "True", "train.cuda.fp32_precision": "ieee"}
    on_cuda = RunLineage("r1", "dcgan", "fashion-mnist", {}, {}, "", stages, 0,
                         {"train.resolved_device": "cuda", "seed": "0", **flags})
    on_cpu = RunLineage("r2", "dcgan", "fashion-mnist", {}, {}, "", stages, 0, {"train.resolved_device": "cpu"})
    for kind in ("train", "evaluate"):
        exact, why = _same_kind(on_cuda, kind)
        assert not exact and "CUDA" in why
        assert _same_kind(on_cpu, kind) == (True, "")
    rule = cuda_rule(on_cuda, 0.02)
    assert rule["exact"] is False and rule["tolerance"] == 0.02 and rule["flags"] == flags
