"""The report stage's leaderboard: every model present, or one model's metrics missing."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from genlab.io import write_json_atomic
from genlab.reporting import write_report


def fake_outputs(root, models):
    for i, name in enumerate(models):
        record = {"model": name,
                  "fid": {"value": 50.0 - 10 * i, "n_fake": 500, "n_real": 1000, "extractor": "x", "precision": "fp32"},
                  "kid": {"mean": 0.05 - 0.01 * i, "std": 0.001, "n_fake": 500, "n_real": 1000}}
        write_json_atomic(root / "metrics" / f"{name}.json", record)
        write_json_atomic(root / "models" / name / "mlflow_run.json", {"run_id": f"run-{name}"})
        (root / "plots").mkdir(exist_ok=True)
        (root / "plots" / f"{name}.csv").write_text("step,loss_d,loss_g,real_score,fake_score\n1,1.3,0.7,0.6,0.4\n2,1.2,0.8,0.55,0.45\n")


def report(root, models):
    return write_report([(m, "dcgan") for m in models], metrics_dir=root / "metrics", models_dir=root / "models",
                        plots_dir=root / "plots", samples_dir=root / "samples", report_dir=root / "reports")


def test_every_model_present_sorted_by_fid(tmp_path):
    fake_outputs(tmp_path, ["a", "b", "c"])
    frame = report(tmp_path, ["a", "b", "c"])
    assert list(frame["model"]) == ["c", "b", "a"]  # FID 30 < 40 < 50
    csv = pd.read_csv(tmp_path / "reports" / "leaderboard.csv")
    assert list(csv["run_id"]) == ["run-c", "run-b", "run-a"]
    assert csv["fid"].tolist() == pytest.approx([30.0, 40.0, 50.0])
    md = (tmp_path / "reports" / "leaderboard.md").read_text()
    assert md.splitlines()[2].startswith("| 1 | c | dcgan | 30.00 |")
    for name in "abc":
        assert (tmp_path / "reports" / "curves" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "curves/a.png" in (tmp_path / "reports" / "index.html").read_text()


def test_one_model_missing_still_renders_with_the_reason(tmp_path):
    fake_outputs(tmp_path, ["a", "b"])
    (tmp_path / "metrics" / "b.json").unlink()
    frame = report(tmp_path, ["a", "b"])
    assert list(frame["model"]) == ["a", "b"]  # the missing one last
    row = frame.set_index("model").loc["b"]
    assert pd.isna(row["fid"]) and "missing" in row["status"] and row["run_id"] == "run-b"
    assert "| 2 | b | dcgan | — |" in (tmp_path / "reports" / "leaderboard.md").read_text()


def test_report_is_byte_stable(tmp_path):
    fake_outputs(tmp_path, ["a"])
    report(tmp_path, ["a"])
    first = {p.name: p.read_bytes() for p in (tmp_path / "reports").rglob("*") if p.is_file()}
    report(tmp_path, ["a"])
    second = {p.name: p.read_bytes() for p in (tmp_path / "reports").rglob("*") if p.is_file()}
    assert first == second
