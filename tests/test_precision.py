"""Same params, same experiment: precision is explicit, resolved visibly, and fp32 means IEEE fp32."""
from __future__ import annotations

import pytest
import torch

from genlab.config import parse_params
from genlab.training import device as device_mod
from genlab.training.device import autocast, ieee_fp32, resolve_precision

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
    from genlab.metrics.evaluate import eval_settings
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
