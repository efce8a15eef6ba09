"""`genlab preset NAME`: a named, complete params file under configs/, validated and written as params.yaml.

The preset file's bytes become params.yaml's (its comments included), so `git diff params.yaml` shows
exactly what the preset changes. A params.yaml with uncommitted changes is not overwritten without
`force`: those changes exist nowhere else.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from genlab.errors import InputError

PARAMS = "params.yaml"
#: Top-level keys dvc.yaml iterates over (`foreach: ${...}`): DVC needs them written in the file,
#: even where genlab.config would fill in a default.
PIPELINE_KEYS = ("datasets", "tasks", "models", "seeds", "report")


@dataclass(frozen=True)
class Preset:
    file: str         # relative to the repository root
    summary: str


PRESETS: dict[str, Preset] = {
    "paper-scale": Preset(
        "configs/paper-scale.yaml",
        "the papers' settings on one CUDA GPU: 20 full epochs, batch 64, conv width 64, the papers' "
        "learning rates; FID of 10,000 generated vs 10,000 real test images (Lucic et al. 2018)"),
    "study": Preset(
        "configs/study.yaml",
        "paper-scale's models and protocol over 10 training seeds each on one CUDA GPU: Inception FID/KID at "
        "10k vs the 10k test split for every seed, FID-infinity on each model's first seed, ranks with intervals"),
}


class PresetError(InputError):
    """A preset that cannot be applied; the message says what to do."""


def preset_path(name: str, repo: Path) -> Path:
    if name not in PRESETS:
        raise PresetError(f"unknown preset {name!r}; allowed names: {', '.join(PRESETS)}")
    path = Path(repo) / PRESETS[name].file
    if not path.is_file():
        raise PresetError(f"{path}: not found; run `genlab preset` from the repository root (or pass --repo)")
    return path


def check_preset(path: Path):
    """The preset validated exactly as the stages validate params.yaml (genlab.config.load_params)."""
    from genlab.config import ParamsError, load_params
    from genlab.io import load_yaml

    try:
        params = load_params(path)
    except ParamsError as err:
        raise PresetError(f"{path}: {err}") from None
    raw = load_yaml(path.read_text())
    for key in PIPELINE_KEYS:
        if key not in raw:
            raise PresetError(f"{path}: no `{key}:` key; dvc.yaml iterates over it, so write it "
                              f"(`{key}: {{}}` when empty)")
    return params


def uncommitted(repo: Path) -> str | None:
    """Why params.yaml must not be overwritten without --force (changes not committed, or no way to
    tell), with what to do; None when it is safe to overwrite."""
    target = Path(repo) / PARAMS
    if not target.exists():
        return None
    unknown = "so whether it holds uncommitted changes is unknown; pass --force to overwrite it"
    try:
        proc = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--ignored", "--", PARAMS],
                              cwd=repo, capture_output=True, text=True)
    except FileNotFoundError:
        return f"{target} exists and git is not installed, {unknown}"
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[0]
        return f"`git status` failed for {target} ({why}), {unknown}"
    if proc.stdout.strip():
        return (f"{target} has uncommitted changes; commit them (`git commit {PARAMS}`) or set them aside "
                f"(`git stash push {PARAMS}`) first, or pass --force to overwrite them")
    return None


def apply_preset(name: str, repo: Path = Path("."), *, force: bool = False) -> str:
    """Validate preset `name` and write it as `repo`/params.yaml, atomically. Returns what was done."""
    from genlab.io import atomic_path

    repo = Path(repo)
    source = preset_path(name, repo)
    params = check_preset(source)
    data = source.read_bytes()
    target = repo / PARAMS
    if target.exists() and target.read_bytes() == data:
        return f"{target} already is preset {name} ({source}); nothing written"
    refusal = None if force else uncommitted(repo)
    if refusal:
        raise PresetError(refusal)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask()
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
        os.chmod(tmp, mode)
    return (f"wrote {target} from preset {name} ({source}): {len(params.models)} models "
            f"({', '.join(params.models)}); next: dvc repro")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def listing() -> str:
    width = max(map(len, PRESETS))
    return "\n".join(f"{name:<{width}}  {p.file}: {p.summary}" for name, p in PRESETS.items())
