"""The leaderboard: one section per dataset, each with its models and its real-data reference row.

Writes `leaderboard.csv` (pandas, a `dataset` column), `leaderboard.md` and `index.html` plus one
curves PNG per model. A model whose metrics file is missing still gets a row, with the reason, so
a failed model is visible rather than silently absent. Numbers are compared within a dataset only.
"""
from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Iterable, NamedTuple

import pandas as pd

from genlab.io import atomic_path, protocol_path, read_record, write_bytes_atomic

COLUMNS = ["dataset", "model", "type", "fid", "kid_mean", "kid_std", "precision", "recall", "classifier_fid", "classifier_is",
           "classes_covered", "conditional_accuracy", "n_fake", "n_real", "extractor", "compute_precision", "train_precision",
           "run_id", "status"]


REFERENCE = "reference"


class ModelEntry(NamedTuple):
    name: str
    type: str
    dataset: str


def reference_metrics_name(dataset: str) -> str:
    """The reference stage's metrics file of a dataset (metrics/reference-<dataset>.json)."""
    return f"{REFERENCE}-{dataset}"


def _metric_row(entry: ModelEntry, metrics_dir: Path, models_dir: Path) -> dict:
    row = {"dataset": entry.dataset, "model": entry.name, "type": entry.type}
    is_reference = entry.type == "real data"
    run_file = models_dir / entry.name / "mlflow_run.json"
    row["run_id"] = json.loads(run_file.read_text())["run_id"] if run_file.exists() and not is_reference else None
    path = metrics_dir / f"{reference_metrics_name(entry.dataset) if is_reference else entry.name}.json"
    if not protocol_path(path).exists():
        row["status"] = f"no metrics: {protocol_path(path)} is missing (training or evaluation did not finish)"
        return row
    record = read_record(path)
    fid, kid = record.get("fid", {}), record.get("kid", {})
    prc = record.get("precision_recall", {})
    row.update(fid=fid.get("value"), kid_mean=kid.get("mean"), kid_std=kid.get("std"),
               precision=prc.get("precision"), recall=prc.get("recall"),
               classifier_fid=record.get("classifier_fid", {}).get("value"),
               classifier_is=record.get("classifier_is", {}).get("mean"),
               classes_covered=record.get("class_histogram", {}).get("classes_covered"),
               conditional_accuracy=record.get("conditional_accuracy", {}).get("value"),
               n_fake=fid.get("n_fake"), n_real=fid.get("n_real"), extractor=fid.get("extractor"),
               compute_precision=fid.get("compute_dtype"), train_precision=record.get("train_precision"),
               status="ok")
    return row


def leaderboard_frame(models: Iterable[ModelEntry], datasets: Iterable[str], metrics_dir: Path,
                      models_dir: Path) -> pd.DataFrame:
    """Datasets in the given order; within each, its reference row and models sorted by FID (best
    first), models without metrics last."""
    datasets = list(datasets)
    entries = [ModelEntry(REFERENCE, "real data", d) for d in datasets] + list(models)
    rows = [_metric_row(entry, metrics_dir, models_dir) for entry in entries]
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"run_id": object})
    frame["run_id"] = frame["run_id"].where(frame["run_id"].notna(), None)
    frame["_dataset"] = frame["dataset"].map({d: i for i, d in enumerate(datasets)})
    frame["_missing"] = frame["fid"].isna()
    frame = frame.sort_values(["_dataset", "_missing", "fid", "model"], kind="stable")
    return frame.drop(columns=["_dataset", "_missing"]).reset_index(drop=True)


def curve_groups(columns: Iterable[str]) -> dict[str, list[str]]:
    """A model's per-step curves, split into losses and real/fake (or classifier) scores."""
    return {"losses": [c for c in columns if c.startswith("loss") or c in ("recon", "kl", "adv_latent")],
            "scores": [c for c in columns if c.endswith("_score") or c.startswith("aux_acc")]}


OVERLAY_DIR = "overlay"
OVERLAY_POINTS = 300  # per model and metric: a readable overlay, a page of a few hundred kB


def write_overlays(models: Iterable[ModelEntry], plots_dir: Path, report_dir: Path) -> None:
    """Every model's curves in one long table per group (step, model, metric, value): the files of
    dvc.yaml's top-level `losses` and `scores` plots, drawn one colour per model by the template
    .dvc/plots/by_model.json. (DVC overlays named files only; the models are params, so one file.)
    Each curve is thinned to every k-th step, at most OVERLAY_POINTS points; the full curves are the
    train stages' plots."""
    tables: dict[str, list[pd.DataFrame]] = {group: [] for group in curve_groups(())}
    for entry in models:
        csv_path = plots_dir / f"{entry.name}.csv"
        if not csv_path.exists():
            continue
        curves = pd.read_csv(csv_path)
        curves = curves.iloc[::math.ceil(len(curves) / OVERLAY_POINTS) or 1]
        for group, columns in curve_groups(curves.columns).items():
            if columns:
                long = curves.melt(id_vars="step", value_vars=columns, var_name="metric")
                tables[group].append(long.assign(model=entry.name)[["step", "model", "metric", "value"]])
    for group, parts in tables.items():
        frame = pd.concat(parts) if parts else pd.DataFrame(columns=["step", "model", "metric", "value"])
        with atomic_path(report_dir / OVERLAY_DIR / f"{group}.csv") as tmp:
            frame.to_csv(tmp, index=False, lineterminator="\n")


def plot_curves(csv_path: Path, out_path: Path, title: str) -> bool:
    """Losses (left) and real/fake scores (right) against step; False when there is no CSV."""
    if not csv_path.exists():
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = pd.read_csv(csv_path)
    panels = [p for p in curve_groups(curves.columns).values() if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.2), squeeze=False)
    for ax, columns in zip(axes[0], panels):
        for column in columns:
            ax.plot(curves["step"], curves[column], label=column, linewidth=1)
        ax.set_xlabel("step")
        ax.legend(loc="best", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_path) as tmp:
        # No timestamp in the PNG: identical curves give identical bytes.
        fig.savefig(tmp, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return True


def _fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _precision_label(row) -> str:
    """fp32 (IEEE) training and Inception features are the standard protocol; anything else is named."""
    labels = []
    if isinstance(row.train_precision, str) and row.train_precision != "fp32":
        labels.append(f"{row.train_precision} training")
    if isinstance(row.compute_precision, str) and row.compute_precision != "fp32":
        labels.append(f"{row.compute_precision} features")
    return f" ({', '.join(labels)})" if labels else ""


def to_markdown(frame: pd.DataFrame) -> str:
    head = ("| rank | model | type | FID | KID (mean ± std) | precision | recall | clf-FID | clf-IS | classes | "
            "cond. acc. | N fake / real | run id | status |\n")
    head += "|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|---|\n"
    sections = []
    for dataset, group in frame.groupby("dataset", sort=False):
        lines = []
        for rank, row in enumerate(group.itertuples(index=False), 1):
            kid = "—" if pd.isna(row.kid_mean) else f"{row.kid_mean:.4f} ± {row.kid_std:.4f}"
            n = "—" if pd.isna(row.n_fake) else f"{int(row.n_fake)} / {int(row.n_real)}"
            classes = "—" if pd.isna(row.classes_covered) else str(int(row.classes_covered))
            lines.append(f"| {rank} | {row.model} | {row.type}{_precision_label(row)} | {_fmt(row.fid, 2)} | {kid} | "
                         f"{_fmt(row.precision, 2)} | {_fmt(row.recall, 2)} | {_fmt(row.classifier_fid, 1)} | "
                         f"{_fmt(row.classifier_is, 2)} | {classes} | {_fmt(row.conditional_accuracy, 2)} | {n} | "
                         f"{row.run_id or '—'} | {row.status} |")
        sections.append(f"## {dataset}\n\n" + head + "\n".join(lines) + "\n")
    return "\n".join(sections)


def to_html(frame: pd.DataFrame, report_dir: Path, samples_dir: Path, curves: dict[str, Path]) -> str:
    def rel(path: Path) -> str:
        return html.escape(os.path.relpath(path, report_dir))

    rows = []
    for dataset, group in frame.groupby("dataset", sort=False):
        rows.append(f"<tr><th colspan='9' style='text-align:left'><h2>{html.escape(str(dataset))}</h2></th></tr>")
        rows.extend(_html_row(row, rel, samples_dir, curves) for row in group.itertuples(index=False))
    return ("<!doctype html><html><head><meta charset='utf-8'><title>genlab leaderboard</title>"
            "<style>body{font-family:sans-serif}td,th{border-bottom:1px solid #ddd;padding:6px;"
            "vertical-align:top}table{border-collapse:collapse}</style></head><body>"
            "<h1>genlab leaderboard</h1><p>One section per dataset, sorted by FID (lower is better). FID depends "
            "on the dataset and on N: compare only rows of one section with the same N, and read each against "
            "its section's reference row (real train images).</p><table><tr><th>model</th><th>FID</th><th>KID</th>"
            "<th>precision / recall</th><th>classifier FID / IS</th>"
            "<th>N</th><th>MLflow run</th><th>samples</th><th>curves</th></tr>"
            + "".join(rows) + "</table></body></html>\n")


def _html_row(row, rel, samples_dir: Path, curves: dict[str, Path]) -> str:
    grid = samples_dir / f"{row.model}.png"
    grid_tag = f'<img src="{rel(grid)}" width="280">' if grid.exists() and row.type != "real data" else "—"
    curve = curves.get(row.model)
    curve_tag = f'<img src="{rel(curve)}" width="520">' if curve else "—"
    kid = "—" if pd.isna(row.kid_mean) else f"{row.kid_mean:.4f} ± {row.kid_std:.4f}"
    return (f"<tr><td><b>{html.escape(row.model)}</b><br>{html.escape(str(row.type) + _precision_label(row))}</td>"
            f"<td>{_fmt(row.fid, 2)}</td><td>{kid}</td>"
            f"<td>{_fmt(row.precision, 2)} / {_fmt(row.recall, 2)}</td>"
            f"<td>{_fmt(row.classifier_fid, 1)} / {_fmt(row.classifier_is, 2)}</td>"
            f"<td>{'—' if pd.isna(row.n_fake) else int(row.n_fake)}</td>"
            f"<td><code>{html.escape(str(row.run_id or '—'))}</code><br>{html.escape(row.status)}</td>"
            f"<td>{grid_tag}</td><td>{curve_tag}</td></tr>")


def write_report(models: Iterable[ModelEntry], datasets: Iterable[str], *, metrics_dir: Path, models_dir: Path,
                 plots_dir: Path, samples_dir: Path, report_dir: Path) -> pd.DataFrame:
    models = list(models)
    frame = leaderboard_frame(models, datasets, metrics_dir, models_dir)
    curves = {}
    for entry in models:
        out = report_dir / "curves" / f"{entry.name}.png"
        if plot_curves(plots_dir / f"{entry.name}.csv", out, entry.name):
            curves[entry.name] = out
    write_overlays(models, plots_dir, report_dir)
    with atomic_path(report_dir / "leaderboard.csv") as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")
    write_bytes_atomic(report_dir / "leaderboard.md", to_markdown(frame).encode())
    write_bytes_atomic(report_dir / "index.html", to_html(frame, report_dir, samples_dir, curves).encode())
    return frame
