"""The report's figures: the rank key's spread over seeds, quality against training compute, and the
samples that lie nearest the training split beside those training images. PNGs without timestamps, so
the same inputs give the same bytes."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from genlab.io import atomic_path
from genlab.layout import seed_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=80, metadata={"Software": None})


def spread_plot(out: Path, scores: Mapping[str, Sequence[float]], reference: Sequence[float], key: str, scale: float,
                title: str) -> None:
    """A strip plot: one row per model (best first), a dot per training seed, a bar at the mean; the
    reference row's subsets as a grey band (its mean ± std), the floor a model is read against."""
    plt = _pyplot()
    names = list(scores)
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1.4))
    if len(reference):
        ref = scale * np.asarray(reference, float)
        ax.axvspan(ref.mean() - ref.std(ddof=1 if len(ref) > 1 else 0), ref.mean() + ref.std(ddof=1 if len(ref) > 1 else 0),
                   color="0.85", label=f"reference ({len(ref)} real subsets)")
        ax.axvline(ref.mean(), color="0.5", linewidth=1)
    for row, name in enumerate(names):
        values = scale * np.asarray(scores[name], float)
        if len(values):
            ax.plot(values, np.full(len(values), row), "o", color="C0", alpha=0.7, markersize=5)
            ax.plot([values.mean()] * 2, [row - 0.3, row + 0.3], color="C3", linewidth=2)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel(f"{key}{' x1e3' if scale != 1 else ''} (lower is better): a dot per training seed, red: mean")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    if len(reference):
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)


def epoch_rows(curves_dir: Path, seeds: Sequence[int]) -> list[list[dict]]:
    """Each seed's per-epoch budget rows (plots/train/<m>/seed-<s>-epochs.csv), [] where absent."""
    out = []
    for seed in seeds:
        path = seed_path(curves_dir, seed, "-epochs.csv")
        if path.exists():
            with open(path, newline="") as f:
                out.append([r for r in csv.DictReader(f)])
    return out


def compute_plot(out: Path, budgets: Mapping[str, list[list[dict]]], title: str) -> None:
    """Every model's per-epoch selection score (classifier-FID vs training images) against its training
    seconds, a line per seed, one colour per model: quality against compute."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, runs) in enumerate(budgets.items()):
        for j, rows in enumerate(runs):
            points = [(float(r["train_seconds"]), float(r["select_classifier_fid"])) for r in rows
                      if r.get("select_classifier_fid")]
            if points:
                x, y = zip(*points)
                ax.plot(x, y, "-o", color=f"C{i % 10}", markersize=3, linewidth=1, alpha=0.8,
                        label=name if j == 0 else None)
    ax.set_xlabel("training seconds (the loop alone)")
    ax.set_ylabel("selection score: classifier-FID vs training images")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)


def nearest_grid(out: Path, record: Mapping, samples: Path, packed: Path) -> bool:
    """The samples nearest the training split (top row) above their nearest training images (bottom row),
    from a seed's memorization entry; False when the record has none."""
    import h5py

    from genlab.grid import save_grid

    entry = record.get("memorization") or {}
    nearest = entry.get("nearest")
    if not nearest or not samples.exists() or not packed.exists():
        return False
    import torch

    with h5py.File(samples, "r") as f:
        fakes = np.stack([f["images"][int(i)] for i in nearest["sample"]])
    with h5py.File(packed, "r") as f:
        reals = np.stack([f["train/images"][int(i)] for i in nearest["train"]])
    tiles = torch.from_numpy(np.concatenate([fakes, reals]))
    save_grid(out, tiles, nrow=len(fakes))
    return True
