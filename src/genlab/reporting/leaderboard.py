"""The leaderboard: one row per model with its metrics and MLflow run, its grid and its curves.

Writes `leaderboard.csv` (pandas), `leaderboard.md` and `index.html` plus one curves PNG per
model. A model whose metrics file is missing still gets a row, with the reason, so a failed
model is visible rather than silently absent.
"""
from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from genlab.io import atomic_path, write_bytes_atomic

COLUMNS = ["model", "type", "fid", "kid_mean", "kid_std", "precision", "recall", "classifier_fid", "classifier_is",
           "classes_covered", "conditional_accuracy", "n_fake", "n_real", "extractor", "compute_precision",
           "run_id", "status"]


def _metric_row(name: str, model_type: str, metrics_dir: Path, models_dir: Path) -> dict:
    row = {"model": name, "type": model_type}
    run_file = models_dir / name / "mlflow_run.json"
    row["run_id"] = json.loads(run_file.read_text())["run_id"] if run_file.exists() else None
    path = metrics_dir / f"{name}.json"
    if not path.exists():
        row["status"] = f"no metrics: {path} is missing (training or evaluation did not finish)"
        return row
    record = json.loads(path.read_text())
    fid, kid = record.get("fid", {}), record.get("kid", {})
    prc = record.get("precision_recall", {})
    row.update(fid=fid.get("value"), kid_mean=kid.get("mean"), kid_std=kid.get("std"),
               precision=prc.get("precision"), recall=prc.get("recall"),
               classifier_fid=record.get("classifier_fid", {}).get("value"),
               classifier_is=record.get("classifier_is", {}).get("mean"),
               classes_covered=record.get("class_histogram", {}).get("classes_covered"),
               conditional_accuracy=record.get("conditional_accuracy", {}).get("value"),
               n_fake=fid.get("n_fake"), n_real=fid.get("n_real"), extractor=fid.get("extractor"),
               compute_precision=fid.get("compute_dtype"), status="ok")
    return row


def leaderboard_frame(models: Iterable[tuple[str, str]], metrics_dir: Path, models_dir: Path) -> pd.DataFrame:
    """Rows sorted by FID (best first); models without metrics last."""
    rows = [_metric_row(name, kind, metrics_dir, models_dir) for name, kind in models]
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"run_id": object})
    frame["run_id"] = frame["run_id"].where(frame["run_id"].notna(), None)
    frame["_missing"] = frame["fid"].isna()
    frame = frame.sort_values(["_missing", "fid", "model"], kind="stable").drop(columns="_missing")
    return frame.reset_index(drop=True)


def plot_curves(csv_path: Path, out_path: Path, title: str) -> bool:
    """Losses (left) and real/fake scores (right) against step; False when there is no CSV."""
    if not csv_path.exists():
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = pd.read_csv(csv_path)
    losses = [c for c in curves.columns if c.startswith("loss") or c in ("recon", "kl", "adv_latent")]
    scores = [c for c in curves.columns if c.endswith("_score") or c.startswith("aux_acc")]
    panels = [p for p in (losses, scores) if p]
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


def to_markdown(frame: pd.DataFrame) -> str:
    head = ("| rank | model | type | FID | KID (mean ± std) | precision | recall | clf-FID | clf-IS | classes | "
            "cond. acc. | N fake / real | run id | status |\n")
    head += "|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|---|\n"
    lines = []
    for rank, row in enumerate(frame.itertuples(index=False), 1):
        kid = "—" if pd.isna(row.kid_mean) else f"{row.kid_mean:.4f} ± {row.kid_std:.4f}"
        n = "—" if pd.isna(row.n_fake) else f"{int(row.n_fake)} / {int(row.n_real)}"
        classes = "—" if pd.isna(row.classes_covered) else str(int(row.classes_covered))
        lines.append(f"| {rank} | {row.model} | {row.type} | {_fmt(row.fid, 2)} | {kid} | {_fmt(row.precision, 2)} | "
                     f"{_fmt(row.recall, 2)} | {_fmt(row.classifier_fid, 1)} | {_fmt(row.classifier_is, 2)} | "
                     f"{classes} | {_fmt(row.conditional_accuracy, 2)} | {n} | {row.run_id or '—'} | {row.status} |")
    return head + "\n".join(lines) + "\n"


def to_html(frame: pd.DataFrame, report_dir: Path, samples_dir: Path, curves: dict[str, Path]) -> str:
    def rel(path: Path) -> str:
        return html.escape(os.path.relpath(path, report_dir))

    rows = []
    for row in frame.itertuples(index=False):
        grid = samples_dir / f"{row.model}.png"
        grid_tag = f'<img src="{rel(grid)}" width="280">' if grid.exists() else "no samples"
        curve = curves.get(row.model)
        curve_tag = f'<img src="{rel(curve)}" width="520">' if curve else "no curves"
        kid = "—" if pd.isna(row.kid_mean) else f"{row.kid_mean:.4f} ± {row.kid_std:.4f}"
        rows.append(
            f"<tr><td><b>{html.escape(row.model)}</b><br>{html.escape(str(row.type))}</td>"
            f"<td>{_fmt(row.fid, 2)}</td><td>{kid}</td>"
            f"<td>{_fmt(row.precision, 2)} / {_fmt(row.recall, 2)}</td>"
            f"<td>{_fmt(row.classifier_fid, 1)} / {_fmt(row.classifier_is, 2)}</td>"
            f"<td>{'—' if pd.isna(row.n_fake) else int(row.n_fake)}</td>"
            f"<td><code>{html.escape(str(row.run_id or '—'))}</code><br>{html.escape(row.status)}</td>"
            f"<td>{grid_tag}</td><td>{curve_tag}</td></tr>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>genlab leaderboard</title>"
            "<style>body{font-family:sans-serif}td,th{border-bottom:1px solid #ddd;padding:6px;"
            "vertical-align:top}table{border-collapse:collapse}</style></head><body>"
            "<h1>genlab leaderboard</h1><p>Sorted by FID (lower is better). FID depends on N: "
            "compare only rows with the same N.</p><table><tr><th>model</th><th>FID</th><th>KID</th>"
            "<th>precision / recall</th><th>classifier FID / IS</th>"
            "<th>N</th><th>MLflow run</th><th>samples</th><th>curves</th></tr>"
            + "".join(rows) + "</table></body></html>\n")


def write_report(models: Iterable[tuple[str, str]], *, metrics_dir: Path, models_dir: Path, plots_dir: Path,
                 samples_dir: Path, report_dir: Path) -> pd.DataFrame:
    models = list(models)
    frame = leaderboard_frame(models, metrics_dir, models_dir)
    curves = {}
    for name, _ in models:
        out = report_dir / "curves" / f"{name}.png"
        if plot_curves(plots_dir / f"{name}.csv", out, name):
            curves[name] = out
    with atomic_path(report_dir / "leaderboard.csv") as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")
    write_bytes_atomic(report_dir / "leaderboard.md", to_markdown(frame).encode())
    write_bytes_atomic(report_dir / "index.html", to_html(frame, report_dir, samples_dir, curves).encode())
    return frame
