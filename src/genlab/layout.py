"""Where a model's seed runs live: one trained model, samples file and metrics record per training seed.

    models/<m>/mlflow_run.json           the model's parent MLflow run (the aggregates over seeds)
    models/<m>/seed-<s>/                 one seed's model.pt, best.pt, checkpoint.pt and MLflow run
    plots/train/<m>/seed-<s>.csv         its per-step curves (seed-<s>-epochs.csv: per-epoch seconds, scores)
    samples/<m>/seed-<s>.h5              its samples
    plots/samples/<m>/seed-<s>.png       their grid (a DVC image plot)
    metrics/<m>/seed-<s>.json            its metrics (and .protocol.json); metrics/<m>.json: over seeds
"""
from __future__ import annotations

import re
from pathlib import Path

SEED_DIR = re.compile(r"seed-(\d+)")


def seed_name(seed: int) -> str:
    return f"seed-{seed}"


def seed_path(directory: Path, seed: int, suffix: str = "") -> Path:
    """<directory>/seed-<s><suffix>: a seed's subdirectory (no suffix) or file (".h5", ".json", ...)."""
    return Path(directory) / f"{seed_name(seed)}{suffix}"


def seeds_in(directory: Path) -> list[int]:
    """The seeds with a subdirectory or file under `directory`, ascending."""
    if not Path(directory).is_dir():
        return []
    found = {int(m[1]) for p in Path(directory).iterdir() if (m := SEED_DIR.match(p.name))}
    return sorted(found)


def remove_other_seeds(directory: Path, keep) -> list[int]:
    """Delete the seed entries under `directory` whose seed is not in `keep` (seeds dropped from params):
    a directory's outputs are what its params say. Returns the seeds removed."""
    import shutil

    removed = []
    for path in sorted(Path(directory).glob("seed-*")) if Path(directory).is_dir() else ():
        match = SEED_DIR.match(path.name)
        if match and int(match[1]) not in set(keep):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(int(match[1]))
    return sorted(set(removed))
