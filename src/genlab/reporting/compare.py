"""`genlab compare`: MLflow runs side by side in one self-contained HTML page.

Everything is read through an `MlflowClient` (a local SQLite store or a team's `mlflow server`):
the runs' final sample grids (`samples/seed-<s>.png`), their per-epoch grids (logged with
`log_image(key="samples", step=epoch)`, which MLflow stores as
`images/samples+step+<step>+timestamp+<ms>+<uuid>.png`), every per-step metric overlaid run against
run, the params that differ, and the metrics logged once (FID, KID, ...) with the protocol each was
measured under, marked where the runs' protocols differ. Images are embedded as data URIs: the page
is one file, with no script and no external style, to mail or attach.

A run is one training seed's run (genlab.runs.find_run): a model name shows its first
seed's run, `<model>@<seed>` that seed's. A model's parent run, given by its id, is shown as its first
seed's run too: the parent holds the numbers over seeds (`fid.mean`, `fid.std`, ...) but no grid, curve
or protocol of its own, and the report's leaderboard and spread figure are where seeds are compared.
Runs made before training seeds are read under their old names (`samples/<model>.png`,
`metrics/<model>.protocol.json` or `metrics/<model>.json`).
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from genlab.errors import GenlabError
from genlab.io import write_bytes_atomic
from genlab.runs import find_run
from genlab.tracking.mlflow_run import GRID_KEY, IMAGE_FILE

RESULT_FIELDS = ("value", "mean", "std")
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")  # matplotlib's tab10: a run's colour in the curves and its header


# --------------------------------------------------------------------------- reading a run
@dataclass
class RunView:
    """What the page shows of one run."""

    run: Any  # mlflow.entities.Run
    experiment: str
    grid: bytes | None                        # samples/seed-<s>.png (samples/<model>.png before seeds)
    step_grids: dict[int, bytes]              # epoch -> per-epoch grid PNG
    curves: dict[str, dict[int, float]]       # metric logged at several steps -> {step: value}
    single: dict[str, float]                  # metrics logged at one step (evaluation, speed)
    protocols: dict[str, dict[str, Any]]      # row of the metrics table -> its protocol (read_protocols)

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def model(self) -> str:
        return self.run.data.tags.get("genlab.model") or self.run.info.run_name or "?"

    @property
    def seed(self) -> str | None:
        """The training seed (tag genlab.seed); None for a run made before training seeds."""
        return self.run.data.tags.get("genlab.seed")

    @property
    def grid_name(self) -> str:
        return grid_names(self.model, self.seed)[0]

    @property
    def label(self) -> str:
        exp = self.run.data.tags.get("dvc.exp_name")
        name = self.model if self.seed is None else f"{self.model}@{self.seed}"
        return f"{name}{f' ({exp})' if exp else ''} {self.run_id[:8]}"


def grid_names(model: str, seed: str | None) -> list[str]:
    """The names the run's final grid may have under samples/, in the order they are looked for."""
    return ([f"seed-{seed}.png"] if seed is not None else []) + [f"{model}.png"]


def metrics_names(model: str, seed: str | None) -> list[str]:
    """The stems its metrics files may have under metrics/: seed-<s> (a seed run), <model> (before seeds)."""
    return ([f"seed-{seed}"] if seed is not None else []) + [model]


def _first(files: dict[str, str], names: Iterable[str]) -> str | None:
    return next((files[name] for name in names if name in files), None)


def read_run(client, run, tmp: Path) -> RunView:
    """The run's grids, metrics and protocols; artifacts are downloaded under `tmp`."""
    run_id = run.info.run_id
    tmp = tmp / run_id  # runs of one model have artifacts of the same names
    tmp.mkdir(parents=True, exist_ok=True)
    model, seed = run.data.tags.get("genlab.model", ""), run.data.tags.get("genlab.seed")
    curves, single = read_metrics(client, run)
    metrics_files = _artifacts(client, run_id, "metrics")
    stem = next((s for s in metrics_names(model, seed) if f"{s}.json" in metrics_files
                 or f"{s}.protocol.json" in metrics_files), None)  # one record's pair, never a mix
    return RunView(
        run=run, experiment=client.get_experiment(run.info.experiment_id).name,
        grid=_fetch(client, run_id, _first(_artifacts(client, run_id, "samples"), grid_names(model, seed)), tmp),
        step_grids=read_step_grids(client, run_id, tmp), curves=curves, single=single,
        protocols=read_protocols(_fetch(client, run_id, metrics_files.get(f"{stem}.protocol.json"), tmp),
                                 _fetch(client, run_id, metrics_files.get(f"{stem}.json"), tmp), set(single)))


def _artifacts(client, run_id: str, folder: str) -> dict[str, str]:
    """The files directly in an artifact folder: name -> artifact path (empty when there is none)."""
    return {Path(f.path).name: f.path for f in client.list_artifacts(run_id, folder) if not f.is_dir}


def _fetch(client, run_id: str, path: str | None, tmp: Path) -> bytes | None:
    if path is None:
        return None
    return Path(client.download_artifacts(run_id, path, str(tmp))).read_bytes()


def read_step_grids(client, run_id: str, tmp: Path) -> dict[int, bytes]:
    """The per-epoch grids by step; the newest where a resumed run logged a step twice."""
    latest: dict[int, tuple[int, str]] = {}
    for name, path in _artifacts(client, run_id, "images").items():
        match = IMAGE_FILE.fullmatch(name)
        if match and match["key"] == GRID_KEY:
            step, ts = int(match["step"]), int(match["ts"])
            if step not in latest or ts > latest[step][0]:
                latest[step] = (ts, path)
    return {step: _fetch(client, run_id, path, tmp) for step, (_, path) in sorted(latest.items())}


def read_metrics(client, run) -> tuple[dict[str, dict[int, float]], dict[str, float]]:
    """Split the run's metrics into curves (more than one step) and single values (the latest)."""
    curves, single = {}, {}
    for key, latest in sorted(run.data.metrics.items()):
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.step, m.timestamp))
        by_step = {m.step: m.value for m in history}  # the newest value of a step logged twice
        if len(by_step) > 1:
            curves[key] = by_step
        else:
            single[key] = latest
    return curves, single


# --------------------------------------------------------------------------- protocols
def read_protocols(split: bytes | None, nested: bytes | None, logged: set[str]) -> dict[str, dict[str, Any]]:
    """The protocol of each row of the metrics table: of every metric in `logged`, and of every
    metrics-file entry no such metric comes from (a null Inception Score and its reason). Entries come
    from `seed-<s>.protocol.json` (`<model>.protocol.json` before seeds: the whole record, results
    beside their protocol) when the run has one, else from `<model>.json` (runs made before the
    numbers and the protocols were split)."""
    record = split if split is not None else nested
    if record is None:
        return {}
    entries, fields = nested_protocols(json.loads(record), logged)
    sources = {metric: key for metric in logged if (key := protocol_key(metric, entries, fields))}
    unused = {key: entry for key, entry in entries.items() if key not in sources.values()}
    return {**unused, **{metric: entries[key] for metric, key in sources.items()}}


def nested_protocols(record: dict[str, Any], logged: set[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """The nested file's entries less their results, and the entry of each result field but
    value/mean/std. Results: value/mean/std, any other float (precision, recall, f_score), lists of
    numbers (class counts) and fields logged as MLflow metrics (classes_covered)."""
    def result(field: str, value: Any) -> bool:
        if field in RESULT_FIELDS or field in logged or isinstance(value, float):
            return True
        return isinstance(value, list) and all(isinstance(v, (int, float)) for v in value)

    entries, fields = {}, {}
    for key, entry in record.items():
        if isinstance(entry, dict):
            entries[key] = {f: v for f, v in entry.items() if not result(f, v)}
            fields.update({f: key for f in entry if f not in entries[key] and f not in RESULT_FIELDS})
    return entries, fields


def protocol_key(metric: str, entries: dict[str, Any], fields: dict[str, str]) -> str | None:
    """The metrics-file entry an MLflow metric comes from: fid_n250 -> fid, classes_covered -> the
    entry with that field, kid_mean -> kid, precision/recall -> precision_recall."""
    base = re.sub(r"_n\d+$", "", metric)
    if base in entries:
        return base
    if base in fields:
        return fields[base]
    near = [k for k in entries if base.startswith(f"{k}_") or k.startswith(f"{base}_") or k.endswith(f"_{base}")]
    return max(near, key=len) if near else None


def compact(protocol: dict[str, Any] | None) -> str:
    """`extractor=..., n_fake=250` with long hashes and reasons shortened (the cell's title has them whole)."""
    def short(value: Any) -> str:
        text = str(value)
        if re.fullmatch(r"[0-9a-f]{32,}", text):
            return text[:12] + "…"
        return text if len(text) <= 60 else text[:57] + "…"

    return ", ".join(f"{k}={short(v)}" for k, v in sorted((protocol or {}).items()))


# --------------------------------------------------------------------------- the page
def compare_runs(client, refs: Sequence[str], output: str | Path) -> Path:
    """Resolve `refs` (ids, model names, `<model>@<seed>`, `dvc exp` names; a parent run: its first
    seed's run, see the module docstring) and write the comparison page to `output`."""
    if not refs:
        raise GenlabError("give at least one run to compare (a run id, a model name, `<model>@<seed>` or a "
                          "`dvc exp` name)")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    runs = {}
    for ref in refs:  # a run named twice is shown once
        run = find_run(client, ref, seed_run=True)
        runs.setdefault(run.info.run_id, run)
    with tempfile.TemporaryDirectory(prefix="genlab-compare-") as tmp:
        views = [read_run(client, run, Path(tmp)) for run in runs.values()]
    output = Path(output)
    write_bytes_atomic(output, render(views, client.tracking_uri).encode())
    return output


STYLE = ("body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}"
         "td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}"
         "img.grid{max-width:360px;image-rendering:pixelated}.proto{color:#555;font-size:80%}"
         "tr.differs{background:#fff0e0}tr.differs th{color:#b30000}.swatch{display:inline-block;"
         "width:.9em;height:.9em;margin-right:.4em;vertical-align:middle}")


def render(views: list[RunView], tracking_uri: str) -> str:
    title = "genlab compare: " + ", ".join(v.label for v in views)
    sections = [
        ("Runs", header_table(views)),
        ("Final sample grids", grids_row(views)),
        ("Per-epoch sample grids", step_table(views)),
        ("Training curves", curves_section(views)),
        ("Params that differ", params_table(views)),
        ("Metrics logged once", metrics_table(views)),
    ]
    body = "".join(f"<h2>{html.escape(name)}</h2>{content}" for name, content in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>Tracking URI: <code>{html.escape(tracking_uri)}</code></p>{body}</body></html>\n")


def _png(data: bytes | None, alt: str, css: str = "grid") -> str:
    if data is None:
        return ""
    return (f"<img class='{css}' alt='{html.escape(alt, quote=True)}' "
            f"src='data:image/png;base64,{base64.b64encode(data).decode()}'>")


def _head_row(views: list[RunView], first: str) -> str:
    cells = "".join(f"<th><span class='swatch' style='background:{PALETTE[i % len(PALETTE)]}'></span>"
                    f"{html.escape(v.label)}</th>" for i, v in enumerate(views))
    return f"<tr><th>{html.escape(first)}</th>{cells}</tr>"


def _row(name: str, cells: Iterable[str], css: str = "") -> str:
    """A table row: `name` escaped, `cells` already HTML."""
    css = f" class='{css}'" if css else ""
    return f"<tr{css}><th>{html.escape(name)}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _start(run) -> str:
    ms = run.info.start_time
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).isoformat(timespec="seconds") if ms else "—"


def header_table(views: list[RunView]) -> str:
    fields = {
        "model": lambda v: v.model,
        "training seed": lambda v: v.seed if v.seed is not None else "—",
        "run id": lambda v: v.run_id,
        "parent run": lambda v: v.run.data.tags.get("mlflow.parentRunId", "—"),
        "experiment": lambda v: v.experiment,
        "status": lambda v: v.run.info.status,
        "start time (UTC)": lambda v: _start(v.run),
        "git commit": lambda v: v.run.data.tags.get("git.commit", "—"),
        "dvc exp name": lambda v: v.run.data.tags.get("dvc.exp_name", "—"),
    }
    rows = [_row(name, (f"<code>{html.escape(str(get(v)))}</code>" for v in views)) for name, get in fields.items()]
    return "<table>" + _head_row(views, "") + "".join(rows) + "</table>"


def grids_row(views: list[RunView]) -> str:
    cells = (_png(v.grid, f"samples/{v.grid_name}")
             or html.escape(f"no samples/{v.grid_name}: its evaluate stage has not run") for v in views)
    return "<table>" + _head_row(views, "") + _row("final", cells) + "</table>"


def step_table(views: list[RunView]) -> str:
    steps = sorted(set().union(*(v.step_grids for v in views)))
    if not steps:
        return "<p>No per-epoch grids logged.</p>"
    rows = [_row(str(step), (_png(v.step_grids.get(step), f"{v.label} epoch {step}") for v in views))
            for step in steps]
    return ("<p>One row per image step (the epoch that ended); empty where a run logged no grid.</p>"
            "<table>" + _head_row(views, "epoch") + "".join(rows) + "</table>")


def curves_section(views: list[RunView]) -> str:
    names = sorted(set().union(*(v.curves for v in views)))
    if not names:
        return "<p>No metric logged at more than one step.</p>"
    return "".join(_png(curve_png(name, views), name, "curve") for name in names)


def curve_png(metric: str, views: list[RunView]) -> bytes:
    """One metric of every run that has it, against step, each run in its colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, view in enumerate(views):
        curve = view.curves.get(metric)
        if curve:
            ax.plot(list(curve), list(curve.values()), label=view.label, color=PALETTE[i % len(PALETTE)], linewidth=1)
    ax.set_title(metric)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def params_table(views: list[RunView]) -> str:
    params = [v.run.data.params for v in views]
    names = sorted(set().union(*params))
    differ = [n for n in names if len({p.get(n) for p in params}) > 1]
    if not differ:
        return f"<p>All {len(names)} params equal.</p>"
    rows = [_row(n, (html.escape(p.get(n, "—")) for p in params)) for n in differ]
    return (f"<p>{len(differ)} of {len(names)} params differ.</p><table>" + _head_row(views, "param")
            + "".join(rows) + "</table>")


def metrics_table(views: list[RunView]) -> str:
    """One row per metric logged once, then per metrics-file entry without such a metric: each run's
    value, and the protocol once when the runs share it, else under each value. A row is marked where
    the protocols of the runs with a value differ."""
    metrics = sorted(set().union(*(v.single for v in views)))
    others = sorted(set().union(*(v.protocols for v in views)) - set(metrics))
    if not metrics and not others:
        return "<p>No metric logged once.</p>"
    head = _head_row(views, "metric").replace("</tr>", "<th>protocol</th></tr>")
    return ("<p>Each value with the protocol it was measured under. Rows marked ⚠: the runs' protocols "
            "differ, so their numbers are not comparable as they stand.</p><table>"
            + head + "".join(_metric_row(m, views) for m in metrics + others) + "</table>")


def _metric_row(metric: str, views: list[RunView]) -> str:
    protocols = [v.protocols.get(metric) for v in views]
    values = [v.single.get(metric) for v in views]
    differs = len({_key(p) for p, value in zip(protocols, values) if value is not None}) > 1
    shared = {_key(p): p for p in protocols if p is not None}
    per_run = len(shared) > 1
    cells = ["—" if value is None else f"{value:.6g}" for value in values]
    if per_run:
        cells = [cell + _protocol(p) for cell, p in zip(cells, protocols)]
    last = "differ" if differs else "per run" if per_run else _protocol(next(iter(shared.values()), None))
    return _row(f"{metric} ⚠ protocols differ" if differs else metric, cells + [last], "differs" if differs else "")


def _key(protocol: dict[str, Any] | None) -> str:
    return json.dumps(protocol, sort_keys=True, default=str)


def _protocol(protocol: dict[str, Any] | None) -> str:
    """The compact protocol, whole in its tooltip."""
    if protocol is None:
        return ""
    title = html.escape(_key(protocol), quote=True)
    return f"<div class='proto' title='{title}'>{html.escape(compact(protocol))}</div>"
