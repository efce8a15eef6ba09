"""The report stage's leaderboard: every model present, grouped by dataset with each dataset's
reference row, or one model's metrics missing."""
from __future__ import annotations


import pandas as pd
import pytest

from genlab.io import protocol_path, write_json_atomic, write_metrics
from genlab.reporting.leaderboard import OVERLAY_POINTS
from genlab.reporting import ModelEntry, write_report


def fake_outputs(root, models, first_fid=50.0):
    for i, name in enumerate(models):
        record = {"model": name,
                  "fid": {"value": first_fid - 10 * i, "n_fake": 500, "n_real": 1000, "extractor": "x", "precision": "fp32"},
                  "kid": {"mean": 0.05 - 0.01 * i, "std": 0.001, "n_fake": 500, "n_real": 1000}}
        write_metrics(root / "metrics" / f"{name}.json", record, {"fid": record["fid"]["value"]})
        write_json_atomic(root / "models" / name / "mlflow_run.json", {"run_id": f"run-{name}"})
        (root / "plots").mkdir(exist_ok=True)
        (root / "plots" / f"{name}.csv").write_text("step,loss_d,loss_g,real_score,fake_score\n1,1.3,0.7,0.6,0.4\n2,1.2,0.8,0.55,0.45\n")


def report(root, models, datasets=("fashion-mnist",), dataset_of=lambda name: "fashion-mnist"):
    return write_report([ModelEntry(m, "dcgan", dataset_of(m)) for m in models], list(datasets),
                        metrics_dir=root / "metrics", models_dir=root / "models", plots_dir=root / "plots",
                        samples_dir=root / "samples", report_dir=root / "reports")


def test_every_model_present_sorted_by_fid(tmp_path):
    fake_outputs(tmp_path, ["a", "b", "c"])
    frame = report(tmp_path, ["a", "b", "c"])
    assert list(frame["model"]) == ["c", "b", "a", "reference"]  # FID 30 < 40 < 50; no reference metrics yet
    csv = pd.read_csv(tmp_path / "reports" / "leaderboard.csv")
    assert list(csv["run_id"])[:3] == ["run-c", "run-b", "run-a"]
    assert csv["fid"].tolist()[:3] == pytest.approx([30.0, 40.0, 50.0])
    md = (tmp_path / "reports" / "leaderboard.md").read_text()
    assert md.splitlines()[0] == "## fashion-mnist"
    assert md.splitlines()[4].startswith("| 1 | c | dcgan | 30.00 |")
    for name in "abc":
        assert (tmp_path / "reports" / "curves" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "curves/a.png" in (tmp_path / "reports" / "index.html").read_text()


def test_one_model_missing_still_renders_with_the_reason(tmp_path):
    fake_outputs(tmp_path, ["a", "b"])
    protocol_path(tmp_path / "metrics" / "b.json").unlink()
    frame = report(tmp_path, ["a", "b"])
    assert list(frame["model"]) == ["a", "b", "reference"]  # the missing ones last
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


def test_rows_grouped_by_dataset_each_with_its_reference(tmp_path):
    fake_outputs(tmp_path, ["f1", "f2"])
    fake_outputs(tmp_path, ["l1", "l2"], first_fid=150.0)
    for dataset, fid in (("fashion-mnist", 5.0), ("lfw", 20.0)):
        write_metrics(tmp_path / "metrics" / f"reference-{dataset}.json",
                      {"model": "reference", "fid": {"value": fid, "n_fake": 500, "n_real": 1000},
                       "kid": {"mean": 0.0, "std": 0.0}})
    frame = report(tmp_path, ["f1", "l1", "f2", "l2"], datasets=("lfw", "fashion-mnist"),
                   dataset_of=lambda name: "lfw" if name.startswith("l") else "fashion-mnist")
    assert list(zip(frame["dataset"], frame["model"])) == [
        ("lfw", "reference"), ("lfw", "l2"), ("lfw", "l1"),
        ("fashion-mnist", "reference"), ("fashion-mnist", "f2"), ("fashion-mnist", "f1")]
    assert frame.set_index(["dataset", "model"]).loc[("lfw", "reference"), "fid"] == 20.0
    md = (tmp_path / "reports" / "leaderboard.md").read_text()
    assert md.index("## lfw") < md.index("| 1 | reference | real data | 20.00 |") < md.index("## fashion-mnist")
    page = (tmp_path / "reports" / "index.html").read_text()
    assert page.index("<h2>lfw</h2>") < page.index("<h2>fashion-mnist</h2>")


def test_overlays_hold_every_models_curves_in_one_long_table_per_group(tmp_path):
    fake_outputs(tmp_path, ["a", "b"])
    steps = OVERLAY_POINTS * 3 + 1  # a long run: thinned to at most OVERLAY_POINTS points per curve
    lines = "\n".join(f"{i},{i / steps:.4f},0.5,0.1" for i in range(1, steps + 1))
    (tmp_path / "plots" / "c.csv").write_text(f"step,loss,recon,kl\n{lines}\n")
    report(tmp_path, ["a", "b", "c"])
    losses = pd.read_csv(tmp_path / "reports" / "overlay" / "losses.csv")
    scores = pd.read_csv(tmp_path / "reports" / "overlay" / "scores.csv")
    assert list(losses.columns) == ["step", "model", "metric", "value"]
    assert set(zip(losses["model"], losses["metric"])) == {
        ("a", "loss_d"), ("a", "loss_g"), ("b", "loss_d"), ("b", "loss_g"), ("c", "loss"), ("c", "recon"), ("c", "kl")}
    assert set(scores["model"]) == {"a", "b"} and set(scores["metric"]) == {"real_score", "fake_score"}
    a = losses[(losses["model"] == "a") & (losses["metric"] == "loss_g")]
    assert a["step"].tolist() == [1, 2] and a["value"].tolist() == [0.7, 0.8]
    c = losses[(losses["model"] == "c") & (losses["metric"] == "loss")]
    assert len(c) <= OVERLAY_POINTS and c["step"].iloc[0] == 1 and c["step"].is_monotonic_increasing


def test_a_task_section_has_its_identity_row_first_and_its_own_columns(tmp_path):
    fake_outputs(tmp_path, ["f1"])
    for name, fid, psnr in (("p2p", 80.0, 21.5), ("identity", 120.0, 12.25)):
        record = {"model": name, "fid": {"value": fid, "n_fake": 100, "n_real": 100},
                  "kid": {"mean": 0.1, "std": 0.01}, "psnr": {"value": psnr, "n": 100},
                  "ssim": {"value": 0.5, "n": 100}, "l1": {"value": 0.125, "n": 100},
                  "classifier_fid": {"value": None, "reason": "no class labels"}}
        write_metrics(tmp_path / "metrics" / ("reference-edges.json" if name == "identity" else f"{name}.json"), record)
    entries = [ModelEntry("f1", "dcgan", "fashion-mnist"), ModelEntry("p2p", "pix2pix", "edges")]
    frame = write_report(entries, ["fashion-mnist"], tasks=["edges"], metrics_dir=tmp_path / "metrics",
                         models_dir=tmp_path / "models", plots_dir=tmp_path / "plots",
                         samples_dir=tmp_path / "samples", report_dir=tmp_path / "reports")
    # the identity row leads its section although its FID is worse; the missing reference goes last
    assert list(zip(frame["dataset"], frame["model"])) == [
        ("fashion-mnist", "f1"), ("fashion-mnist", "reference"), ("edges", "identity"), ("edges", "p2p")]
    md = (tmp_path / "reports" / "leaderboard.md").read_text()
    dataset_part, task_part = md.split("## edges")
    assert "PSNR" not in dataset_part and "clf-FID" not in dataset_part  # columns with no value in the section
    head = task_part.splitlines()[2]
    assert head == "| rank | model | type | FID | KID (mean ± std) | PSNR (dB) | SSIM | L1 | N fake / real | run id | status |"
    assert "| 1 | identity | identity | 120.00 | 0.1000 ± 0.0100 | 12.25 | 0.500 | 0.125 | 100 / 100 | — | ok |" in task_part
    page = (tmp_path / "reports" / "index.html").read_text()
    assert page.index("<h2>fashion-mnist</h2>") < page.index("<h2>edges</h2>") < page.index("<th>PSNR (dB)</th>")
    csv = pd.read_csv(tmp_path / "reports" / "leaderboard.csv")
    assert {"psnr", "ssim", "l1", "cycle_l1", "task_accuracy"} <= set(csv.columns)
    assert csv.set_index("model").loc["p2p", "psnr"] == 21.5
