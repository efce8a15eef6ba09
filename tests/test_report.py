"""The report stage's leaderboard: every model present, grouped by dataset with each dataset's reference
row, ranked by the rank key's mean over training seeds with rank intervals and tie groups, or one model's
metrics missing."""
from __future__ import annotations

import pandas as pd
import pytest

from genlab.io import protocol_path, write_json_atomic
from genlab.metrics.seeds import write_aggregate, write_seed_records
from genlab.reporting import ModelEntry, write_report
from genlab.reporting.leaderboard import OVERLAY_POINTS

CURVES = "step,loss_d,loss_g,real_score,fake_score\n1,1.3,0.7,0.6,0.4\n2,1.2,0.8,0.55,0.45\n"


def record(name: str, fid: float, kid: float) -> dict:
    return {"model": name,
            "fid": {"value": fid, "n_fake": 500, "n_real": 1000, "extractor": "x", "precision": "fp32"},
            "kid": {"mean": kid, "std": 0.001, "n_fake": 500, "n_real": 1000},
            "classifier_kid": {"mean": kid, "std": 0.0001, "n_fake": 2000, "n_real": 10000}}


def fake_model(root, name, keys, fid=50.0, seeds=None):
    """A model's per-seed records (rank key `keys[i]` for seed i; FID on the first seed only), aggregate,
    parent run file, curves and per-epoch budget."""
    seeds = seeds or list(range(len(keys)))
    records = {s: record(name, fid if i == 0 else None, k) for i, (s, k) in enumerate(zip(seeds, keys))}
    write_seed_records(root / "metrics" / name, records)
    write_aggregate(root / "metrics" / f"{name}.json", records, "training seeds", name)
    write_json_atomic(root / "models" / name / "mlflow_run.json", {"run_id": f"run-{name}"})
    for s in seeds:
        (root / "plots" / name).mkdir(parents=True, exist_ok=True)
        (root / "plots" / name / f"seed-{s}.csv").write_text(CURVES)
        (root / "plots" / name / f"seed-{s}-epochs.csv").write_text(
            "epoch,step,images_seen,train_seconds,select_classifier_fid\n1,10,640,2.5,40\n2,20,1280,5.0,30\n")


def fake_reference(root, dataset, keys, fid=5.0):
    records = {k: record("reference", fid if k == 0 else None, v) for k, v in enumerate(keys)}
    write_aggregate(root / "metrics" / f"reference-{dataset}.json", records, "disjoint real subsets", "reference")


def report(root, entries, datasets=("fashion-mnist",), tasks=()):
    return write_report(entries, list(datasets), tasks=list(tasks), metrics_dir=root / "metrics",
                        models_dir=root / "models", plots_dir=root / "plots", samples_dir=root / "samples",
                        grids_dir=root / "plots" / "samples", report_dir=root / "reports")


def entry(name, seeds=(0, 1, 2), dataset="fashion-mnist", departures=()):
    return ModelEntry(name, "dcgan", dataset, tuple(seeds), tuple(departures))


def test_models_ranked_by_the_rank_key_over_seeds_with_intervals_and_tie_groups(tmp_path):
    fake_model(tmp_path, "a", [0.010, 0.011, 0.012], fid=30.0)   # best, clearly
    fake_model(tmp_path, "b", [0.030, 0.032, 0.031], fid=60.0)   # b and c overlap: one group
    fake_model(tmp_path, "c", [0.031, 0.029, 0.033], fid=50.0)
    fake_reference(tmp_path, "fashion-mnist", [0.001, 0.0012, 0.0011])
    frame = report(tmp_path, [entry("a"), entry("b"), entry("c", departures=["lr 0.001 (paper 0.0002)"])])
    board = frame.set_index("model")
    assert list(frame["model"]) == ["reference", "a", "b", "c"]  # the baseline leads, then by mean key
    assert board.loc["a", "group"] == 1 and board.loc["b", "group"] == board.loc["c", "group"] == 2
    assert (board.loc["a", "rank_low"], board.loc["a", "rank_high"]) == (1, 1)
    assert board.loc["b", "rank_low"] == 2 and board.loc["c", "rank_high"] == 3  # overlapping intervals
    assert board.loc["a", "key_mean"] == pytest.approx(0.011) and board.loc["a", "key_std"] == pytest.approx(0.001)
    assert board.loc["a", "seeds"] == 3 and board.loc["reference", "seeds"] == 3
    assert board.loc["a", "images_seen"] == 1280 and board.loc["a", "train_seconds"] == 5.0
    assert board.loc["a", "fid"] == 30.0  # the first seed's Inception FID (the only one scored)
    # c's FID order (2nd of 3) is inside its rank interval [2, 3]: not flagged
    assert not board["fid_order_differs"].fillna(False).any()
    md = (tmp_path / "reports" / "leaderboard.md").read_text()
    assert "| 1 | 1 [1] | a | dcgan | 11 ± 1 (10–12) | 3 |" in md and "classifier_kid x1e3: mean" in md  # all < 0.1
    assert "| c † |" in md and "† c: lr 0.001 (paper 0.0002)" in md
    assert "training-seed spread" in md and "estimator noise" in md
    for name in ("spread", "compute"):
        assert (tmp_path / "reports" / "figures" / f"{name}-fashion-mnist.png").read_bytes()[:4] == b"\x89PNG"
    assert "figures/spread-fashion-mnist.png" in (tmp_path / "reports" / "index.html").read_text()


def test_a_row_whose_inception_order_leaves_its_rank_interval_is_flagged(tmp_path):
    fake_model(tmp_path, "a", [0.010, 0.011, 0.012], fid=90.0)  # best by the key, worst by FID
    fake_model(tmp_path, "b", [0.050, 0.052, 0.051], fid=30.0)
    frame = report(tmp_path, [entry("a"), entry("b")]).set_index("model")
    assert frame.loc["a", "fid_order_differs"] and frame.loc["b", "fid_order_differs"]
    assert "| a ⚑ |" in (tmp_path / "reports" / "leaderboard.md").read_text()


def test_single_seed_models_are_never_told_apart(tmp_path):
    fake_model(tmp_path, "a", [0.010])
    fake_model(tmp_path, "b", [0.050])
    frame = report(tmp_path, [entry("a", seeds=(0,)), entry("b", seeds=(0,))]).set_index("model")
    assert frame.loc["a", "group"] == frame.loc["b", "group"] == 1
    assert frame.loc["a", "rank"] == 1 and frame.loc["b", "rank"] == 2


def test_one_model_missing_still_renders_with_the_reason(tmp_path):
    fake_model(tmp_path, "a", [0.01, 0.02])
    fake_model(tmp_path, "b", [0.03, 0.04])
    protocol_path(tmp_path / "metrics" / "b.json").unlink()
    frame = report(tmp_path, [entry("a", (0, 1)), entry("b", (0, 1))])
    assert list(frame["model"]) == ["a", "b", "reference"]  # the missing ones last
    row = frame.set_index("model").loc["b"]
    assert pd.isna(row["key_mean"]) and "missing" in row["status"] and row["run_id"] == "run-b"
    assert "| — | — | b | dcgan | — |" in (tmp_path / "reports" / "leaderboard.md").read_text()


def test_report_is_byte_stable(tmp_path):
    fake_model(tmp_path, "a", [0.01, 0.02])
    report(tmp_path, [entry("a", (0, 1))])
    first = {p.name: p.read_bytes() for p in (tmp_path / "reports").rglob("*") if p.is_file()}
    report(tmp_path, [entry("a", (0, 1))])
    second = {p.name: p.read_bytes() for p in (tmp_path / "reports").rglob("*") if p.is_file()}
    assert first == second


def test_rows_grouped_by_dataset_each_with_its_reference(tmp_path):
    for name, keys in (("f1", [0.05, 0.06]), ("f2", [0.02, 0.03]), ("l1", [0.5, 0.6]), ("l2", [0.2, 0.3])):
        fake_model(tmp_path, name, keys)
    fake_reference(tmp_path, "fashion-mnist", [0.001, 0.002], fid=5.0)
    fake_reference(tmp_path, "lfw", [0.01, 0.02], fid=20.0)
    entries = [entry(n, (0, 1), "lfw" if n.startswith("l") else "fashion-mnist") for n in ("f1", "l1", "f2", "l2")]
    frame = report(tmp_path, entries, datasets=("lfw", "fashion-mnist"))
    assert list(zip(frame["dataset"], frame["model"])) == [
        ("lfw", "reference"), ("lfw", "l2"), ("lfw", "l1"),
        ("fashion-mnist", "reference"), ("fashion-mnist", "f2"), ("fashion-mnist", "f1")]
    assert frame.set_index(["dataset", "model"]).loc[("lfw", "reference"), "fid"] == 20.0
    md = (tmp_path / "reports" / "leaderboard.md").read_text()
    assert md.index("## lfw") < md.index("| — | — | reference | real data | 0.015 ± 0.0071 (0.01–0.02) | 2 | 20.00 |") \
        < md.index("## fashion-mnist")
    page = (tmp_path / "reports" / "index.html").read_text()
    assert page.index("<h2>lfw</h2>") < page.index("<h2>fashion-mnist</h2>")


def test_overlays_hold_every_models_curves_in_one_long_table_per_group(tmp_path):
    fake_model(tmp_path, "a", [0.01])
    fake_model(tmp_path, "b", [0.02])
    fake_model(tmp_path, "c", [0.03])
    steps = OVERLAY_POINTS * 3 + 1  # a long run: thinned to at most OVERLAY_POINTS points per curve
    lines = "\n".join(f"{i},{i / steps:.4f},0.5,0.1" for i in range(1, steps + 1))
    (tmp_path / "plots" / "c" / "seed-0.csv").write_text(f"step,loss,recon,kl\n{lines}\n")
    report(tmp_path, [entry(n, (0,)) for n in "abc"])
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
    fake_model(tmp_path, "f1", [0.01])
    for name, fid, psnr in (("p2p", 80.0, 21.5), ("identity", 120.0, 12.25)):
        rec = {**record(name, fid, 0.1), "psnr": {"value": psnr, "n": 100}, "ssim": {"value": 0.5, "n": 100},
               "l1": {"value": 0.125, "n": 100}, "classifier_fid": {"value": None, "reason": "no class labels"}}
        path = tmp_path / "metrics" / ("reference-edges.json" if name == "identity" else f"{name}.json")
        write_aggregate(path, {0: rec}, "training seeds", name)
    entries = [entry("f1", (0,)), ModelEntry("p2p", "pix2pix", "edges")]
    frame = report(tmp_path, entries, tasks=["edges"])
    # the identity row leads its section; the missing reference goes last
    assert list(zip(frame["dataset"], frame["model"])) == [
        ("fashion-mnist", "f1"), ("fashion-mnist", "reference"), ("edges", "identity"), ("edges", "p2p")]
    md = (tmp_path / "reports" / "leaderboard.md").read_text()
    dataset_part, task_part = md.split("## edges")
    assert "PSNR" not in dataset_part and "clf-FID" not in dataset_part  # columns with no value in the section
    head = task_part.splitlines()[2]
    assert "| FID (biased: equal N only) | KID (mean ± subset std) | PSNR (dB) | SSIM | L1 |" in head
    assert "| identity | identity | 0.1 | 1 | 120.00 | 0.1000 ± 0.0010 | 12.25 | 0.500 | 0.125 |" in task_part
    csv = pd.read_csv(tmp_path / "reports" / "leaderboard.csv")
    assert {"psnr", "ssim", "l1", "cycle_l1", "task_accuracy"} <= set(csv.columns)
    assert csv.set_index("model").loc["p2p", "psnr"] == 21.5


def test_a_section_without_the_rank_key_is_ranked_by_inception_kid_and_says_so(tmp_path):
    for name, kid in (("faces1", 0.30), ("faces2", 0.10)):
        records = {s: {"model": name, "fid": {"value": 100.0 + s, "n_fake": 12, "n_real": 12},
                       "kid": {"mean": kid + 0.01 * s, "std": 0.01},
                       "classifier_kid": {"mean": None, "std": None, "reason": "no class labels"}} for s in (0, 1)}
        write_seed_records(tmp_path / "metrics" / name, records)
        write_aggregate(tmp_path / "metrics" / f"{name}.json", records, "training seeds", name)
    frame = report(tmp_path, [entry("faces1", (0, 1), "lfw"), entry("faces2", (0, 1), "lfw")], datasets=("lfw",))
    assert list(frame["model"]) == ["faces2", "faces1", "reference"] and set(frame["rank_key"].dropna()) == {"kid_mean"}
    md = (tmp_path / "reports" / "leaderboard.md").read_text()
    assert "kid_mean: mean ± seed std (min–max)" in md and "Ranked by kid_mean: no row of this section" in md
