"""Find what an audit starts from: the MLflow run, its recorded lineage, and the commit that holds it.

A run records, for each of its stages, the dvc.lock entry DVC wrote for it (genlab.tracking.lineage).
The results of a `dvc repro` are committed after the run, so the run's own `git.commit` is the code's
parent commit, not the one that holds its dvc.lock; and a `dvc exp run` keeps its results in an
experiment ref (refs/exps/...), tagged today with its baseline commit and a dirty tree. So the commit
to audit is found by content: the newest commit (HEAD first, then its history, then other refs)
whose dvc.lock has the run's train entry with the same deps and params (the same experiment). Its outputs and everything else are then compared, so a
later commit that swapped an output is what gets audited, and fails.
"""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from genlab.errors import GenlabError
from genlab.io import load_yaml
from genlab.layout import seed_name

STAGE_KINDS = ("train", "evaluate")  # evaluate draws the samples too
OLD_SAMPLE_KIND = "sample"  # the stage that drew them in runs made before, whose lineage is read when logged


class CannotAudit(GenlabError):
    """The run cannot be audited (no lineage, no commit, data nowhere): says why and what to do."""

    exit_code = 2  # the audit's own code for it (genlab.audit.EXIT_CANNOT)


@dataclass
class RunLineage:
    run_id: str
    model: str
    experiment: str
    tags: dict[str, str]
    metrics: dict[str, float]
    artifact_uri: str
    stages: dict[str, dict[str, Any]]   # "train@gan" -> lineage record
    seed: int | None = None             # the training seed of a seed run; None: a run made before seeds
    params: dict[str, str] = field(default_factory=dict)   # the run's MLflow params

    @property
    def trained_on(self) -> str:
        """The device type training resolved to ("cpu" for a run made before it was recorded)."""
        return self.params.get("train.resolved_device", "cpu")

    def stage(self, kind: str) -> dict[str, Any]:
        return self.stages[f"{kind}@{self.model}"]

    @property
    def label(self) -> str:
        return self.model if self.seed is None else f"{self.model} seed {self.seed}"

    def seed_files(self, kind: str) -> dict[str, tuple[str, str | None]]:
        """The run's own files among a stage's outputs: name -> (repo path, the md5 the run recorded).

        A stage runs every seed of its model, so its outputs hold every seed's files; a seed run owns
        those of its seed, named by their path relative to the seed, which are its artifacts' names:
        `model.pt` (models/<m>/seed-<s>/model.pt), `seed-<s>.png` (plots/samples/<m>/seed-<s>.png),
        `seed-<s>.json` (metrics/<m>/seed-<s>.json). A run made before training seeds owns every file of
        its stages, named by basename."""
        out: dict[str, tuple[str, str | None]] = {}
        for item in self.stage(kind)["out_files"]:
            if "files" not in item:
                if self.seed is None:
                    out[Path(item["path"]).name] = (item["path"], item.get("md5"))
                continue
            for f in item["files"]:
                name = own_name(f["relpath"], self.seed)
                if name is not None:
                    out[name] = (f"{item['path']}/{f['relpath']}", f.get("md5"))
        return out


def own_name(relpath: str, seed: int | None) -> str | None:
    """A directory output's file (path relative to the output) as a seed run's file name, None when it
    belongs to another seed or to none: seed-<s>/model.pt -> model.pt, seed-<s>.h5 -> seed-<s>.h5."""
    if seed is None:
        return Path(relpath).name
    first, _, rest = relpath.partition("/")
    if rest:
        return rest if first == seed_name(seed) else None
    return relpath if re.fullmatch(rf"{re.escape(seed_name(seed))}[.-].+", relpath) else None


def git(root: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise CannotAudit(f"git {' '.join(args)} failed in {root}: {proc.stderr.strip()}")
    return proc.stdout


def resolve_run(client, ref: str):
    """The seed run to audit (genlab.runs.find_run): a run id (a model's parent run: its
    first seed's run), `<model>@<seed>`, a model name (its first seed's run) or a `dvc exp` name."""
    from genlab.runs import UnknownRun, find_run

    try:
        return find_run(client, ref, seed_run=True)
    except UnknownRun as err:
        raise CannotAudit(str(err)) from None


def read_lineage(client, run) -> RunLineage:
    tags = dict(run.data.tags)
    model = tags.get("genlab.model")
    if not model:
        raise CannotAudit(f"run {run.info.run_id} was not made by a genlab train stage (no genlab.model tag)")
    if tags.get("genlab.role") == "parent":
        raise CannotAudit(f"run {run.info.run_id} is model {model}'s parent run (numbers over its training seeds): "
                          f"audit one of its seed runs (`{model}@<seed>` or the seed run's id)")
    seed = int(tags["genlab.seed"]) if tags.get("genlab.seed", "").isdigit() else None
    label = model if seed is None else f"{model} seed {seed}"
    stages = {}
    logged = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "lineage")}
    kinds = STAGE_KINDS + ((OLD_SAMPLE_KIND,) if f"{OLD_SAMPLE_KIND}@{model}.json" in logged else ())
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            name = f"lineage/{kind}@{model}.json"
            try:
                path = client.download_artifacts(run.info.run_id, name, tmp)
            except Exception:  # MLflow raises various types for a missing artifact
                raise CannotAudit(
                    f"run {run.info.run_id} ({label}) has no {name}: it was made before genlab recorded lineage, "
                    f"or its {kind} stage never ran; re-run `dvc repro {kind}@{model}` and commit dvc.lock") from None
            stages[f"{kind}@{model}"] = json.loads(Path(path).read_text())
    experiment = client.get_experiment(run.info.experiment_id).name
    return RunLineage(run.info.run_id, model, experiment, tags, dict(run.data.metrics), run.info.artifact_uri, stages,
                      seed, dict(run.data.params))


def lock_at(root: Path, commit: str) -> dict[str, Any]:
    text = git(root, "show", f"{commit}:dvc.lock", check=False)
    try:
        return (load_yaml(text) or {}).get("stages") or {}
    except yaml.YAMLError:
        return {}


def _inputs(entry: dict[str, Any]) -> tuple:
    return (entry.get("cmd"), json.dumps(entry.get("deps"), sort_keys=True), json.dumps(entry.get("params"), sort_keys=True))


def _candidates(root: Path, lineage: RunLineage) -> list[tuple[str, str]]:
    """(commit, how it is reachable), in the order they are tried."""
    seen: set[str] = set()
    out: list[tuple[str, str]] = []

    def add(commits: str, how: str) -> None:
        for commit in commits.split():
            if commit not in seen:
                seen.add(commit)
                out.append((commit, how))

    exp_name = lineage.tags.get("dvc.exp_name")
    if exp_name:
        for line in git(root, "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps").splitlines():
            sha, ref = line.split(" ", 1)
            if ref.rsplit("/", 1)[-1] == exp_name:
                add(sha, f"experiment {exp_name} ({ref})")
    if git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).strip():
        add(git(root, "rev-list", "HEAD"), "HEAD's history")
    add(git(root, "rev-list", "--all"), "another ref")
    return out


def find_commit(root: Path, lineage: RunLineage, rev: str | None = None) -> tuple[str, str]:
    """The commit whose dvc.lock records this run's experiment (see the module docstring)."""
    train = lineage.stage("train")["dvc_lock"]
    stage = f"train@{lineage.model}"
    if rev:
        commit = git(root, "rev-parse", "--verify", f"{rev}^{{commit}}", check=False).strip()
        if not commit:
            raise CannotAudit(f"--rev {rev}: no such commit in {root}")
        if stage not in lock_at(root, commit):
            raise CannotAudit(f"--rev {rev}: its dvc.lock has no {stage}")
        return commit, f"--rev {rev}"
    blobs: dict[str, dict[str, Any]] = {}  # dvc.lock rarely changes: parse each version once
    for commit, how in _candidates(root, lineage):
        blob = git(root, "rev-parse", "-q", "--verify", f"{commit}:dvc.lock", check=False).strip()
        if not blob:
            continue
        if blob not in blobs:
            blobs[blob] = lock_at(root, commit)
        entry = blobs[blob].get(stage)
        if entry is not None and _inputs(entry) == _inputs(train):
            return commit, how
    code = lineage.tags.get("git.commit", "?")
    dirty = lineage.stage("train")["git"]["dirty_paths"]
    why = (f"it was made from uncommitted changes ({', '.join(dirty[:5])}{' ...' if len(dirty) > 5 else ''}) "
           if dirty else "")
    if subprocess.run(["git", "cat-file", "-e", f"{code}^{{commit}}"], cwd=root, capture_output=True).returncode:
        why += "its code commit is not in this repository (`git fetch` it, and refs/exps for experiments); "
    raise CannotAudit(
        f"no commit in {root} records run {lineage.run_id} ({lineage.label}): no dvc.lock has {stage} with the "
        f"deps and params it ran with; {why}its code commit is {code[:12]}. Commit dvc.lock (and the code) after "
        f"`dvc repro`, or audit from a clone that has the commit (`git fetch`, including refs/exps for experiments)")
