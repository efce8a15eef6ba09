"""The leaderboard: one section per dataset and per image-to-image task, each with its models and its
baseline row (a dataset's real-data reference, a task's identity: output = input). The metric
columns come from the metric registry (genlab.metrics.registry); a section shows those its rows have.

Writes `leaderboard.csv` (pandas, a `dataset` column), `leaderboard.md` and `index.html` plus one
curves PNG per model. A model whose metrics file is missing still gets a row, with the reason, so
a failed model is visible rather than silently absent. Numbers are compared within a section only.
"""
from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd

from genlab.io import atomic_path, protocol_path, read_record, write_bytes_atomic
from genlab.metrics.registry import Column, leaderboard_columns, leaderboard_numbers, metric_numbers

HEAD = ["dataset", "model", "type"]
TAIL = ["n_fake", "n_real", "extractor", "compute_precision", "train_precision", "run_id", "status"]
COLUMNS = HEAD + leaderboard_numbers() + TAIL  # the metric numbers: every registered metric's, in its order

REFERENCE, IDENTITY = "reference", "identity"
BASELINE_TYPES = {REFERENCE: "real data", IDENTITY: "identity"}  # a section's baseline row: model -> type


class ModelEntry(NamedTuple):
    name: str
    type: str
    dataset: str  # its section: the dataset, or the task of a translation model


def reference_metrics_name(dataset: str) -> str:
    """The reference stage's metrics file of a dataset or task (metrics/reference-<name>.json)."""
    return f"{REFERENCE}-{dataset}"


def _metric_row(entry: ModelEntry, metrics_dir: Path, models_dir: Path) -> dict:
    row = {"dataset": entry.dataset, "model": entry.name, "type": entry.type}
    is_baseline = BASELINE_TYPES.get(entry.name) == entry.type
    run_file = models_dir / entry.name / "mlflow_run.json"
    row["run_id"] = json.loads(run_file.read_text())["run_id"] if run_file.exists() and not is_baseline else None
    path = metrics_dir / f"{reference_metrics_name(entry.dataset) if is_baseline else entry.name}.json"
    if not protocol_path(path).exists():
        row["status"] = f"no metrics: {protocol_path(path)} is missing (training or evaluation did not finish)"
        return row
    record = read_record(path)
    fid = record.get("fid", {})
    row.update(metric_numbers(record), n_fake=fid.get("n_fake"), n_real=fid.get("n_real"),
               extractor=fid.get("extractor"), compute_precision=fid.get("compute_dtype"),
               train_precision=record.get("train_precision"), status="ok")
    return row


def leaderboard_frame(models: Iterable[ModelEntry], datasets: Iterable[str], metrics_dir: Path,
                      models_dir: Path, tasks: Iterable[str] = ()) -> pd.DataFrame:
    """One section per dataset, then per task, in the given order; within each, its baseline row
    first (the dataset's reference, the task's identity), then models sorted by FID (best first);
    rows without metrics last."""
    datasets, tasks = list(datasets), list(tasks)
    baselines = ([ModelEntry(REFERENCE, BASELINE_TYPES[REFERENCE], d) for d in datasets]
                 + [ModelEntry(IDENTITY, BASELINE_TYPES[IDENTITY], t) for t in tasks])
    rows = [_metric_row(entry, metrics_dir, models_dir) for entry in baselines + list(models)]
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"run_id": object})
    frame["run_id"] = frame["run_id"].where(frame["run_id"].notna(), None)
    frame["_section"] = frame["dataset"].map({d: i for i, d in enumerate(datasets + tasks)})
    baseline = frame["model"].map(BASELINE_TYPES) == frame["type"]
    frame["_rank"] = np.where(frame["fid"].isna(), 2, np.where(baseline, 0, 1))
    frame = frame.sort_values(["_section", "_rank", "fid", "model"], kind="stable")
    return frame.drop(columns=["_section", "_rank"]).reset_index(drop=True)


def shown_columns(section: pd.DataFrame) -> list[Column]:
    """The metric columns of one section: FID (the ranking) and those with a value in one of its rows
    (a task's section shows PSNR/SSIM where its records have them, a dataset's no all-null column)."""
    return [column for column in leaderboard_columns()
            if column.number == "fid" or section[column.number].notna().any()]


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


def _precision_label(row) -> str:
    """fp32 (IEEE) training and Inception features are the standard protocol; anything else is named."""
    labels = []
    if isinstance(row.train_precision, str) and row.train_precision != "fp32":
        labels.append(f"{row.train_precision} training")
    if isinstance(row.compute_precision, str) and row.compute_precision != "fp32":
        labels.append(f"{row.compute_precision} features")
    return f" ({', '.join(labels)})" if labels else ""


def _n(row, both: bool = True) -> str:
    if pd.isna(row.n_fake):
        return "—"
    return f"{int(row.n_fake)} / {int(row.n_real)}" if both else str(int(row.n_fake))


def to_markdown(frame: pd.DataFrame) -> str:
    sections = []
    for dataset, group in frame.groupby("dataset", sort=False):
        columns = shown_columns(group)
        head = ("| rank | model | type | " + "".join(f"{c.label} | " for c in columns)
                + "N fake / real | run id | status |\n" + "|---:|---|---|" + "".join(f"{c.align}|" for c in columns) + "---|---|---|\n")
        lines = []
        for rank, row in enumerate(group.itertuples(index=False), 1):
            cells = "".join(f"{c.render(row)} | " for c in columns)
            lines.append(f"| {rank} | {row.model} | {row.type}{_precision_label(row)} | {cells}{_n(row)} | "
                         f"{row.run_id or '—'} | {row.status} |")
        sections.append(f"## {dataset}\n\n" + head + "\n".join(lines) + "\n")
    return "\n".join(sections)


def to_html(frame: pd.DataFrame, report_dir: Path, samples_dir: Path, curves: dict[str, Path]) -> str:
    def rel(path: Path) -> str:
        return html.escape(os.path.relpath(path, report_dir))

    tables = []
    for dataset, group in frame.groupby("dataset", sort=False):
        columns = shown_columns(group)
        head = "".join(f"<th>{html.escape(c.label)}</th>" for c in columns)
        rows = "".join(_html_row(row, columns, rel, samples_dir, curves) for row in group.itertuples(index=False))
        tables.append(f"<h2>{html.escape(str(dataset))}</h2><table><tr><th>model</th>{head}<th>N</th>"
                      f"<th>MLflow run</th><th>samples</th><th>curves</th></tr>{rows}</table>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>genlab leaderboard</title>"
            "<style>body{font-family:sans-serif}td,th{border-bottom:1px solid #ddd;padding:6px;"
            "vertical-align:top}table{border-collapse:collapse}</style></head><body>"
            "<h1>genlab leaderboard</h1><p>One section per dataset and per image-to-image task, sorted by FID "
            "(lower is better). FID depends on the dataset and on N: compare only rows of one section with the "
            "same N, and read each against its section's baseline row (for a dataset its real train images, for "
            "a task the identity: output = input).</p>" + "".join(tables) + "</body></html>\n")


def _html_row(row, columns: list[Column], rel, samples_dir: Path, curves: dict[str, Path]) -> str:
    grid = samples_dir / f"{row.model}.png"
    baseline = BASELINE_TYPES.get(row.model) == row.type
    grid_tag = f'<img src="{rel(grid)}" width="280">' if grid.exists() and not baseline else "—"
    curve = curves.get(row.model)
    curve_tag = f'<img src="{rel(curve)}" width="520">' if curve else "—"
    cells = "".join(f"<td>{html.escape(c.render(row))}</td>" for c in columns)
    return (f"<tr><td><b>{html.escape(row.model)}</b><br>{html.escape(str(row.type) + _precision_label(row))}</td>"
            f"{cells}<td>{_n(row, both=False)}</td>"
            f"<td><code>{html.escape(str(row.run_id or '—'))}</code><br>{html.escape(row.status)}</td>"
            f"<td>{grid_tag}</td><td>{curve_tag}</td></tr>")


def write_report(models: Iterable[ModelEntry], datasets: Iterable[str], *, metrics_dir: Path, models_dir: Path,
                 plots_dir: Path, samples_dir: Path, report_dir: Path, tasks: Iterable[str] = ()) -> pd.DataFrame:
    models = list(models)
    frame = leaderboard_frame(models, datasets, metrics_dir, models_dir, tasks)
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
