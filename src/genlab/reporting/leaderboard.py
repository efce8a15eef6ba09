"""The leaderboard: one section per dataset and per image-to-image task, each with its models and its
baseline row (a dataset's real-data reference, a task's identity: output = input). The metric
columns come from the metric registry (genlab.metrics.registry); a section shows those its rows have.

Models are compared as distributions over training seeds (genlab.metrics.stats): each row is ranked by
the mean of `report.rank_by` over its seeds (an unbiased estimator: classifier-space KID by default),
with a bootstrap rank interval and a tie group: a model ranks above the next only when it beats it in
at least `report.tie_probability` of seed pairs and by more than the baseline row's own spread (the
rank key over disjoint real subsets). Every other cell is the mean over seeds; the rank key's cell
adds the seed std and min-max. A row whose Inception FID order falls outside its rank interval is
flagged. Each row states its budget (training images seen, training seconds) and the settings in
which it departs from its paper.

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
from genlab.layout import seed_path
from genlab.metrics import stats
from genlab.metrics.registry import Column, leaderboard_columns, leaderboard_numbers, metric_numbers
from genlab.metrics.seeds import member_values

HEAD = ["dataset", "model", "type", "group", "rank", "rank_low", "rank_high", "seeds", "key_mean", "key_std",
        "key_min", "key_max"]
TAIL = ["rank_key", "images_seen", "train_seconds", "departures", "fid_order_differs", "n_fake", "n_real", "extractor",
        "compute_precision", "train_precision", "run_id", "status"]
COLUMNS = HEAD + leaderboard_numbers() + TAIL  # the metric numbers: every registered metric's, in its order

REFERENCE, IDENTITY = "reference", "identity"
BASELINE_TYPES = {REFERENCE: "real data", IDENTITY: "identity"}  # a section's baseline row: model -> type


class ModelEntry(NamedTuple):
    name: str
    type: str
    dataset: str  # its section: the dataset, or the task of a translation model
    seeds: tuple[int, ...] = (0,)
    departures: tuple[str, ...] = ()  # settings that depart from the paper's (genlab.config.departures)


class Ranking(NamedTuple):
    """How the rows are ranked (params `report`): the number, the tie rule and the bootstrap."""

    rank_by: str = "classifier_kid"
    tie_probability: float = 0.75
    bootstrap: int = 1000
    seed: int = 0


def reference_metrics_name(dataset: str) -> str:
    """The reference stage's metrics file of a dataset or task (metrics/reference-<name>.json)."""
    return f"{REFERENCE}-{dataset}"


#: The rank key of a section where report.rank_by has no value (a dataset without labels has no classifier,
#: so no classifier-space KID): Inception KID, unbiased too, at the Inception N.
FALLBACK_KEY = "kid_mean"


def section_key(records, rank_by: str) -> str:
    """report.rank_by where a record of the section has a value for it, else FALLBACK_KEY."""
    return rank_by if any(member_values(r, rank_by) for r in records if r) else FALLBACK_KEY


def _metric_row(entry: ModelEntry, metrics_dir: Path, models_dir: Path, plots_dir: Path) -> dict:
    row = {"dataset": entry.dataset, "model": entry.name, "type": entry.type}
    is_baseline = BASELINE_TYPES.get(entry.name) == entry.type
    run_file = models_dir / entry.name / "mlflow_run.json"
    row["run_id"] = json.loads(run_file.read_text())["run_id"] if run_file.exists() and not is_baseline else None
    row["departures"] = "; ".join(entry.departures) or None
    if not is_baseline:
        row.update(_budget(plots_dir / entry.name, entry.seeds))
    path = metrics_dir / f"{reference_metrics_name(entry.dataset) if is_baseline else entry.name}.json"
    if not protocol_path(path).exists():
        row["status"] = f"no metrics: {protocol_path(path)} is missing (training or evaluation did not finish)"
        row["_record"] = None
        return row
    record = read_record(path)
    fid = record.get("fid", {})
    means = {number: summary.get("mean") for number, summary in record.get("spread", {}).get("numbers", {}).items()}
    row.update(metric_numbers(record), **means, n_fake=fid.get("n_fake"), n_real=fid.get("n_real"),
               extractor=fid.get("extractor"), compute_precision=fid.get("compute_dtype"),
               train_precision=record.get("train_precision"), status="ok",
               seeds=len(record.get("spread", {}).get("members", [0])))
    row["_record"] = record
    return row


def _budget(curves_dir: Path, seeds) -> dict:
    """Training images seen and training seconds (mean over the seeds that recorded them)."""
    import csv

    images, seconds = [], []
    for seed in seeds:
        path = seed_path(curves_dir, seed, "-epochs.csv")
        if path.exists():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            if rows:
                images.append(int(rows[-1]["images_seen"]))
                seconds.append(float(rows[-1]["train_seconds"]))
    return {"images_seen": int(np.mean(images)) if images else None,
            "train_seconds": float(np.mean(seconds)) if seconds else None}


def leaderboard_frame(models: Iterable[ModelEntry], datasets: Iterable[str], metrics_dir: Path,
                      models_dir: Path, tasks: Iterable[str] = (), plots_dir: Path | None = None,
                      ranking: Ranking = Ranking()) -> pd.DataFrame:
    """One section per dataset, then per task, in the given order; within each, its baseline row
    first (the dataset's reference, the task's identity), then models by the rank key's mean over
    seeds (best first), each with its rank interval and tie group; rows without metrics last."""
    datasets, tasks = list(datasets), list(tasks)
    baselines = ([ModelEntry(REFERENCE, BASELINE_TYPES[REFERENCE], d) for d in datasets]
                 + [ModelEntry(IDENTITY, BASELINE_TYPES[IDENTITY], t) for t in tasks])
    plots_dir = plots_dir or metrics_dir.parent / "plots" / "train"
    rows = [_metric_row(entry, metrics_dir, models_dir, plots_dir) for entry in baselines + list(models)]
    for section in datasets + tasks:
        _rank_section([r for r in rows if r["dataset"] == section], ranking)
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"run_id": object})
    frame["run_id"] = frame["run_id"].where(frame["run_id"].notna(), None)
    frame["_section"] = frame["dataset"].map({d: i for i, d in enumerate(datasets + tasks)})
    baseline = frame["model"].map(BASELINE_TYPES) == frame["type"]
    frame["_rank"] = np.where(frame["key_mean"].isna(), 2, np.where(baseline, 0, 1))
    frame = frame.sort_values(["_section", "_rank", "key_mean", "model"], kind="stable")
    return frame.drop(columns=["_section", "_rank"]).reset_index(drop=True)


def champions(frame: pd.DataFrame) -> dict[str, str]:
    """Each section's first-ranked model (by the rank key's mean over seeds): section -> model name."""
    baseline = frame["model"].map(BASELINE_TYPES) == frame["type"]
    ranked = frame[~baseline & frame["key_mean"].notna()]
    return ranked.groupby("dataset", sort=False)["model"].first().to_dict()


def _rank_section(rows: list[dict], ranking: Ranking) -> None:
    """Fill the rank-key cells, ranks, rank intervals, tie groups and FID-order flags of one section."""
    baseline = [r for r in rows if BASELINE_TYPES.get(r["model"]) == r["type"]]
    models = [r for r in rows if r not in baseline]
    key = section_key([r["_record"] for r in rows], ranking.rank_by)
    for row in rows:
        record = row.pop("_record", None)
        values = tuple(member_values(record, key)) if record else ()
        row["rank_key"] = key
        row.update({f"key_{k}": v for k, v in stats.summarize(values).items() if k != "n"})
        row["_scores"] = np.asarray(values, dtype=float)
    margin = stats.reference_spread(baseline[0]["_scores"]) if baseline else 0.0
    scores = {r["model"]: r.pop("_scores") for r in models}
    for r in baseline:
        r.pop("_scores", None)
    scored = {name: v for name, v in scores.items() if len(v)}
    if not scored:
        return
    groups = stats.rank_groups(scored, margin=margin, threshold=ranking.tie_probability)
    ranks = stats.point_ranks(scored)
    intervals = stats.rank_intervals(scored, resamples=ranking.bootstrap, seed=ranking.seed)
    fids = {r["model"]: r.get("fid") for r in models if r.get("fid") is not None and r["model"] in scored}
    differs = stats.order_disagreements(intervals, fids) if len(fids) == len(scored) else {}
    for r in models:
        name = r["model"]
        if name in scored:
            r.update(group=groups[name], rank=ranks[name], rank_low=intervals[name][0], rank_high=intervals[name][1],
                     fid_order_differs=differs.get(name))


def shown_columns(section: pd.DataFrame, rank_by: str = "") -> list[Column]:
    """The metric columns of one section: FID (the cross-check) and those with a value in one of its rows
    (a task's section shows PSNR/SSIM where its records have them, a dataset's no all-null column); the
    rank key has its own column."""
    return [column for column in leaderboard_columns()
            if column.number != rank_by and (column.number == "fid" or section[column.number].notna().any())]


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
        csv_path = seed_path(plots_dir / entry.name, entry.seeds[0], ".csv")  # the first seed's curves
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


def key_scale(values) -> float:
    """x 1e3 for a section whose rank-key values are all below 0.1 in size (Inception KID: a few
    thousandths), else 1 (classifier-space KID is in the hundreds)."""
    values = [abs(float(v)) for v in values if v is not None and not pd.isna(v)]
    return 1e3 if values and max(values) < 0.1 else 1.0


def _key_cell(row, k: float) -> str:
    """mean ± training-seed std (min–max) of the rank key; one value when there is one member."""
    if pd.isna(row.key_mean):
        return "—"
    if pd.isna(row.key_std) or not row.seeds or row.seeds < 2:
        return f"{k * row.key_mean:.3g}"
    return f"{k * row.key_mean:.3g} ± {k * row.key_std:.2g} ({k * row.key_min:.3g}–{k * row.key_max:.3g})"


def _rank_cell(row) -> str:
    if pd.isna(row.rank):
        return "—"
    low, high = int(row.rank_low), int(row.rank_high)
    return f"{int(row.rank)} [{low}–{high}]" if low != high else f"{int(row.rank)} [{low}]"


def _group_cell(row) -> str:
    return "—" if pd.isna(row.group) else str(int(row.group))


def _budget_cells(row) -> tuple[str, str]:
    images = "—" if pd.isna(row.images_seen) else f"{int(row.images_seen):,}"
    seconds = "—" if pd.isna(row.train_seconds) else f"{row.train_seconds:.0f}" if row.train_seconds >= 10 else \
        f"{row.train_seconds:.1f}"
    return images, seconds


def _marks(row) -> str:
    """† departs from the paper's settings; ⚑ its Inception FID order falls outside its rank interval."""
    marks = ("†" if isinstance(row.departures, str) else "") + ("⚑" if row.fid_order_differs is True else "")
    return f" {marks}" if marks else ""


def key_label(rank_by: str, k: float = 1.0) -> str:
    scale = " x1e3" if k != 1.0 else ""
    return f"{rank_by}{scale}: mean ± seed std (min–max)"


LEGEND = ("Ranked by the rank key's mean over training seeds (lower is better). `rank [a–b]`: the 95% bootstrap "
          "interval of the rank over seeds. `group`: models share a group unless the upper beats the lower in at "
          "least {p:.0%} of seed pairs and by more than the baseline row's spread (its rank key over disjoint real "
          "subsets); a model with one seed is never told apart. ± in the rank-key cell is the training-seed spread "
          "(std over seeds); KID's ± is estimator noise (std over random subsets of one seed's samples). FID is "
          "biased at small N: compare it at equal N only. † departs from the paper's settings (listed below the "
          "table); ⚑ its Inception FID order falls outside its rank interval.")


def _section_notes(group: pd.DataFrame) -> list[str]:
    return [f"† {row.model}: {row.departures}" for row in group.itertuples(index=False) if isinstance(row.departures, str)]


def to_markdown(frame: pd.DataFrame, ranking: Ranking = Ranking()) -> str:
    sections = [LEGEND.format(p=ranking.tie_probability) + "\n"]
    for dataset, group in frame.groupby("dataset", sort=False):
        key = _key_of(group, ranking)
        columns = shown_columns(group, ranking.rank_by)
        k = key_scale(group["key_mean"])
        head = ("| group | rank | model | type | " + key_label(key, k) + " | seeds | "
                + "".join(f"{c.label} | " for c in columns)
                + "images seen | train s | Inception N fake / real | run id | status |\n"
                + "|---:|---|---|---|---|---:|" + "".join(f"{c.align}|" for c in columns) + "---:|---:|---|---|---|\n")
        lines = []
        for row in group.itertuples(index=False):
            cells = "".join(f"{c.render(row)} | " for c in columns)
            images, seconds = _budget_cells(row)
            seeds = "—" if pd.isna(row.seeds) else str(int(row.seeds))
            lines.append(f"| {_group_cell(row)} | {_rank_cell(row)} | {row.model}{_marks(row)} | "
                         f"{row.type}{_precision_label(row)} | {_key_cell(row, k)} | {seeds} | {cells}"
                         f"{images} | {seconds} | {_n(row)} | {row.run_id or '—'} | {row.status} |")
        notes = _section_notes(group)
        if key != ranking.rank_by:
            notes.insert(0, f"Ranked by {key}: no row of this section has {ranking.rank_by} (a dataset without "
                            f"labels has no classifier).")
        sections.append(f"## {dataset}\n\n" + head + "\n".join(lines) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else ""))
    return "\n".join(sections)


def to_html(frame: pd.DataFrame, report_dir: Path, grids_dir: Path, curves: dict[str, Path],
            figures: dict[str, list[Path]] | None = None, nearest: dict[str, Path] | None = None,
            ranking: Ranking = Ranking()) -> str:
    def rel(path: Path) -> str:
        return html.escape(os.path.relpath(path, report_dir))

    figures, nearest = figures or {}, nearest or {}
    tables = []
    for dataset, group in frame.groupby("dataset", sort=False):
        key = _key_of(group, ranking)
        columns = shown_columns(group, ranking.rank_by)
        head = "".join(f"<th>{html.escape(c.label)}</th>" for c in columns)
        rows = "".join(_html_row(row, columns, rel, grids_dir, curves, nearest, key_scale(group["key_mean"]))
                       for row in group.itertuples(index=False))
        images = "".join(f'<img src="{rel(p)}" width="560">' for p in figures.get(dataset, []))
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in _section_notes(group))
        tables.append(f"<h2>{html.escape(str(dataset))}</h2><div>{images}</div><table><tr><th>group</th><th>rank</th>"
                      f"<th>model</th><th>{html.escape(key_label(key, key_scale(group['key_mean'])))}</th>"
                      f"<th>seeds</th>{head}"
                      f"<th>images seen</th><th>train s</th><th>N</th><th>MLflow run</th><th>samples</th>"
                      f"<th>nearest training images</th><th>curves</th></tr>{rows}</table><ul>{notes}</ul>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>genlab leaderboard</title>"
            "<style>body{font-family:sans-serif}td,th{border-bottom:1px solid #ddd;padding:6px;"
            "vertical-align:top}table{border-collapse:collapse}</style></head><body>"
            "<h1>genlab leaderboard</h1><p>One section per dataset and per image-to-image task. "
            + html.escape(LEGEND.format(p=ranking.tie_probability)) + " Read each row against its section's "
            "baseline row (for a dataset its real train images, for a task the identity: output = input).</p>"
            + "".join(tables) + "</body></html>\n")


def _html_row(row, columns: list[Column], rel, grids_dir: Path, curves: dict[str, Path], nearest: dict[str, Path],
              k: float) -> str:
    baseline = BASELINE_TYPES.get(row.model) == row.type
    grid = first_grid(grids_dir / row.model)
    grid_tag = f'<img src="{rel(grid)}" width="280">' if grid is not None and not baseline else "—"
    near = nearest.get(row.model)
    near_tag = f'<img src="{rel(near)}" width="280">' if near else "—"
    curve = curves.get(row.model)
    curve_tag = f'<img src="{rel(curve)}" width="520">' if curve else "—"
    cells = "".join(f"<td>{html.escape(c.render(row))}</td>" for c in columns)
    images, seconds = _budget_cells(row)
    seeds = "—" if pd.isna(row.seeds) else str(int(row.seeds))
    return (f"<tr><td>{_group_cell(row)}</td><td>{_rank_cell(row)}</td>"
            f"<td><b>{html.escape(row.model + _marks(row))}</b><br>{html.escape(str(row.type) + _precision_label(row))}</td>"
            f"<td>{html.escape(_key_cell(row, k))}</td><td>{seeds}</td>"
            f"{cells}<td>{images}</td><td>{seconds}</td><td>{_n(row, both=False)}</td>"
            f"<td><code>{html.escape(str(row.run_id or '—'))}</code><br>{html.escape(row.status)}</td>"
            f"<td>{grid_tag}</td><td>{near_tag}</td><td>{curve_tag}</td></tr>")


def _key_of(group: pd.DataFrame, ranking: Ranking) -> str:
    keys = group["rank_key"].dropna()
    return str(keys.iloc[0]) if len(keys) else ranking.rank_by


def first_grid(grids_dir: Path) -> Path | None:
    """The sample grid of a model's first seed (plots/samples/<m>/seed-<s>.png), if there is one."""
    grids = sorted(grids_dir.glob("seed-*.png"), key=lambda p: int(p.stem.split("-")[1])) if grids_dir.is_dir() else []
    return grids[0] if grids else None


def write_report(models: Iterable[ModelEntry], datasets: Iterable[str], *, metrics_dir: Path, models_dir: Path,
                 plots_dir: Path, samples_dir: Path, grids_dir: Path, report_dir: Path, tasks: Iterable[str] = (),
                 packed_dir: Path | None = None, ranking: Ranking = Ranking()) -> pd.DataFrame:
    from genlab.reporting import figures as fig

    models = list(models)
    frame = leaderboard_frame(models, datasets, metrics_dir, models_dir, tasks, plots_dir, ranking)
    curves = {}
    for entry in models:
        out = report_dir / "curves" / f"{entry.name}.png"
        if plot_curves(seed_path(plots_dir / entry.name, entry.seeds[0], ".csv"), out, f"{entry.name} (seed {entry.seeds[0]})"):
            curves[entry.name] = out
    write_overlays(models, plots_dir, report_dir)
    figures: dict[str, list[Path]] = {}
    for section, group in frame.groupby("dataset", sort=False):
        key = _key_of(group, ranking)
        scores = {m: member_values(read_record(metrics_dir / f"{m}.json"), key)
                  for m in group["model"] if protocol_path(metrics_dir / f"{m}.json").exists()}
        baseline = next((m for m in group["model"] if m in BASELINE_TYPES), None)
        reference = member_values(read_record(metrics_dir / f"{reference_metrics_name(section)}.json"), key) \
            if protocol_path(metrics_dir / f"{reference_metrics_name(section)}.json").exists() else []
        scores.pop(baseline, None)
        order = [m for m in group["model"] if m in scores]
        paths = []
        if any(scores.values()):
            out = report_dir / "figures" / f"spread-{section}.png"
            fig.spread_plot(out, {m: scores[m] for m in order}, reference, key,
                            key_scale([v for m in order for v in scores[m]] + list(reference)),
                            f"{section}: {key} over training seeds")
            paths.append(out)
        budgets = {e.name: fig.epoch_rows(plots_dir / e.name, e.seeds) for e in models if e.dataset == section}
        if any(budgets.values()):
            out = report_dir / "figures" / f"compute-{section}.png"
            fig.compute_plot(out, budgets, f"{section}: per-epoch selection score vs training seconds")
            paths.append(out)
        figures[section] = paths
    nearest = {}
    if packed_dir is not None:
        for entry in models:
            out = report_dir / "nearest" / f"{entry.name}.png"
            metrics_file = metrics_dir / entry.name / f"seed-{entry.seeds[0]}.json"
            if protocol_path(metrics_file).exists() and fig.nearest_grid(
                    out, read_record(metrics_file), seed_path(samples_dir / entry.name, entry.seeds[0], ".h5"),
                    packed_dir / f"{entry.dataset}.h5"):
                nearest[entry.name] = out
    with atomic_path(report_dir / "leaderboard.csv") as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")
    write_bytes_atomic(report_dir / "leaderboard.md", to_markdown(frame, ranking).encode())
    write_bytes_atomic(report_dir / "index.html", to_html(frame, report_dir, grids_dir, curves, figures, nearest,
                                                          ranking).encode())
    return frame


def log_to_parent_runs(models: Iterable[ModelEntry], models_dir: Path, report_dir: Path) -> None:
    """Each model's parent MLflow run gets its section's spread and compute figures (report/)."""
    from genlab.tracking import TrainingRun

    for entry in models:
        if not (models_dir / entry.name / "mlflow_run.json").exists():
            continue
        run = TrainingRun.from_dir(models_dir / entry.name)
        for kind in ("spread", "compute"):
            path = report_dir / "figures" / f"{kind}-{entry.dataset}.png"
            if path.exists():
                run.log_artifact(path, "report")
