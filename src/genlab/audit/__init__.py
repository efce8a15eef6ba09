"""`genlab audit RUN`: rebuild one training seed's MLflow run from the commit that records it, and compare.

RUN is a seed run (genlab.audit.locate.resolve_run): its id, `<model>@<seed>`, a model name (its first
seed's run) or a `dvc exp` name; a model's parent run, given by id, stands for its first seed's run.
A model's stages run all its seeds, so the stage entries are the model's, and the files compared are
the seed's own: models/<m>/seed-<s>/, samples/<m>/seed-<s>.h5, plots/samples/<m>/seed-<s>.png,
metrics/<m>/seed-<s>.json.

Order of the checks (each a row of the report, see genlab.audit.checks):
1. lineage: the run's recorded dvc.lock entries for train/evaluate@<model> (and sample@<model>, the stage
   that drew the samples in runs made before sampling became part of evaluate) equal the entries of
   the commit found for it (genlab.audit.locate), field by field;
2. the commit's files are what dvc.lock says (`dvc status` in a clean worktree of it, after its
   outputs came from the DVC cache or a remote): a commit whose code differs from the code that ran,
   or an output edited by hand, fails here;
3. the run's MLflow artifacts (model, sample grid, metrics files) are the bytes DVC tracks, and its
   logged metrics are the numbers of the seed's committed metrics file;
4. sampling and evaluation re-run in the worktree from the recorded models (unless --no-rebuild): the
   seed's samples must be the same bytes as its run recorded and each metric the same number where
   the environment (CPU kind, torch, threads; device, precision and Inception runtime) matches the
   run's, within --tolerance otherwise;
5. with --retrain, this seed is trained again too (its checkpoint and model files deleted; the stage
   keeps the other seeds' finished runs): the model's bytes must match on the same kind of CPU; on
   another kind, training is not bit-exact and the metrics are compared within the tolerance.

A run trained on CUDA is never held to bytes: genlab sets cuDNN's deterministic mode,
`use_deterministic_algorithms` (warn-only: an op without a deterministic kernel warns, it does not
stop the stage) and CUBLAS_WORKSPACE_CONFIG, but bit-equality also needs the same GPU model, driver,
CUDA and cuDNN, and not every op has a deterministic kernel. Its retrained model file is
inconclusive when its bytes differ, and every metric is compared within the tolerance; the audit's
JSON says so under "cuda" (the rule, the tolerance and the flags the run trained with).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlab.audit.checks import (INCONCLUSIVE, INFO, MATCH, MISMATCH, WITHIN, Report, compare_number,
                                 entry_differences, format_table, sha256, short, status_problems)
from genlab.audit.locate import CannotAudit, RunLineage, find_commit, git, lock_at, read_lineage, resolve_run
from genlab.audit.worktree import Worktree
from genlab.io import file_digest, protocol_path, read_record
from genlab.layout import seed_name

EXIT_PASS, EXIT_MISMATCH, EXIT_CANNOT = 0, 1, 2
DEFAULT_TOLERANCE = 0.01


@dataclass
class AuditResult:
    verdict: str            # pass | fail | cannot-audit
    report: Report
    summary: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return {"pass": EXIT_PASS, "fail": EXIT_MISMATCH}.get(self.verdict, EXIT_CANNOT)


def audit(ref: str, root: Path, *, rev: str | None = None, rebuild: bool = True, retrain: bool = False,
          tolerance: float = DEFAULT_TOLERANCE, json_path: Path | None = None, tag: bool = True,
          log=print) -> AuditResult:
    from genlab.tracking import client as tracking_client
    from genlab.tracking.store import tracking_uri

    t0 = time.perf_counter()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    root = Path(git(root, "rev-parse", "--show-toplevel").strip())
    client = tracking_client(root)
    report = Report()
    summary: dict[str, Any] = {"run": ref, "repo": str(root), "tracking_uri": tracking_uri(root),
                               "tolerance": tolerance, "retrain": retrain, "rebuild": rebuild,
                               "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    run = None
    try:
        run = resolve_run(client, ref)
        lineage = read_lineage(client, run)
        summary.update(run_id=lineage.run_id, model=lineage.model, seed=lineage.seed,
                       parent_run_id=lineage.tags.get("mlflow.parentRunId"), experiment=lineage.experiment)
        if lineage.trained_on == "cuda":
            summary["cuda"] = cuda_rule(lineage, tolerance)
        commit, how = find_commit(root, lineage, rev)
        summary.update(commit=commit, found_in=how)
        log(f"auditing run {lineage.run_id} ({lineage.label}) at commit {commit[:12]} ({how})")
        _lineage_rows(report, lineage, commit, how, lock_at(root, commit))
        with Worktree(root, commit) as tree:
            _workspace_rows(report, lineage, tree, log)
            _artifact_rows(report, lineage, client, tree)
            if rebuild or retrain:
                _rebuild_rows(report, lineage, tree, tolerance, retrain, log)
        verdict = "fail" if report.mismatches else "pass"
    except CannotAudit as err:
        report.add("auditable", "—", "—", "cannot audit", str(err))
        verdict = "cannot-audit"
    summary.update(verdict=verdict, counts=report.counts(), seconds=round(time.perf_counter() - t0, 1))
    result = AuditResult(verdict, report, summary)
    payload = {**summary, "environment": _environment(), "checks": [c.as_dict() for c in report.checks]}
    if json_path is not None:
        from genlab.io import write_json_atomic

        write_json_atomic(json_path, payload)
    if tag and run is not None:
        _tag_run(client, run.info.run_id, payload)
    return result


def _environment() -> dict[str, Any]:
    from genlab.tracking.lineage import environment

    return environment()


# --------------------------------------------------------------------------- 1. lineage
def _lineage_rows(report: Report, lineage: RunLineage, commit: str, how: str, lock: dict[str, Any]) -> None:
    train = lineage.stage("train")
    dirty = train["git"]["dirty_paths"]
    report.add("code commit of the run", lineage.tags.get("git.commit", "—"), commit, INFO,
               f"uncommitted at run time: {', '.join(dirty)}" if dirty else "")
    report.add("audited commit", how, commit, INFO)
    for stage, record in sorted(lineage.stages.items()):
        differs = record.get("code", {}).get("differs_from_repo", [])
        if differs:
            report.add(f"code that ran {stage}", record["code"]["package"], "the repo's src/genlab", MISMATCH,
                       f"these modules were not the repository's files that dvc.lock hashes: {', '.join(differs)}")
    for kind in stage_kinds(lineage):
        stage = f"{kind}@{lineage.model}"
        recorded = lineage.stages[stage]["dvc_lock"]
        locked = lock.get(stage)
        if locked is None:
            report.add(f"dvc.lock {stage}", "recorded", "absent", MISMATCH, f"the commit's dvc.lock has no {stage}")
            continue
        diffs = entry_differences(recorded, locked)
        report.add(f"dvc.lock {stage}", _entry_digest(recorded), _entry_digest(locked),
                   MISMATCH if diffs else MATCH, "\n".join(diffs))


def stage_kinds(lineage: RunLineage) -> tuple[str, ...]:
    """The model's stages that made a run's files: train and evaluate (which draws the samples too), or, for a
    run evaluated before sampling became part of evaluate, train, sample and evaluate. (A run trained then and
    evaluated since holds both stages' lineage: its samples are the evaluate stage's.)"""
    if f"sample@{lineage.model}" not in lineage.stages or any(
            name.endswith(".h5") for name in lineage.seed_files("evaluate")):  # evaluate wrote the samples
        return ("train", "evaluate")
    return ("train", "sample", "evaluate")


def sample_kind(lineage: RunLineage) -> str:
    """The stage that drew the run's samples."""
    return "sample" if "sample" in stage_kinds(lineage) else "evaluate"


def _sample_files(lineage: RunLineage) -> dict[str, tuple[str, str | None]]:
    """The seed's samples file and grid (seed-<s>.h5, seed-<s>.png)."""
    return {name: f for name, f in lineage.seed_files(sample_kind(lineage)).items() if name.endswith((".h5", ".png"))}


def _metric_files(lineage: RunLineage) -> dict[str, tuple[str, str | None]]:
    """The seed's metrics file and its protocol (seed-<s>.json, seed-<s>.protocol.json)."""
    return {name: f for name, f in lineage.seed_files("evaluate").items() if name.endswith(".json")}


def _entry_digest(entry: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------- 2. the commit's files
def _fetch_targets(lineage: RunLineage, lock: dict[str, Any]) -> list[str]:
    """The model's stages and every stage that outputs one of their deps (data, features).

    Stage names, not paths: `dvc checkout` given a mix of both has been seen to check out nothing."""
    producer = {out["path"]: stage for stage, entry in lock.items() for out in entry.get("outs", [])}
    targets = [f"{k}@{lineage.model}" for k in stage_kinds(lineage) if f"{k}@{lineage.model}" in lock]
    for stage in list(targets):
        for dep in lock[stage].get("deps", []):
            if producer.get(dep["path"]) and producer[dep["path"]] not in targets:
                targets.append(producer[dep["path"]])
    return targets


def _workspace_rows(report: Report, lineage: RunLineage, tree: Worktree, log) -> None:
    targets = _fetch_targets(lineage, tree.lock())
    log(f"fetching the outputs of {', '.join(targets)} from the DVC cache or remote")
    tree.fetch(targets)
    own = {f"{kind}@{lineage.model}" for kind in stage_kinds(lineage)}
    problems = status_problems(tree.status([t for t in targets if t in own]))  # not the producers': their deps
    report.add("commit's files = its dvc.lock", "dvc.lock", "files", MISMATCH if problems else MATCH,
               "\n".join(problems) + ("\n(changed deps: the commit's code or data is not what ran; modified "
                                      "outs: an output differs from what DVC recorded)" if problems else ""))


# --------------------------------------------------------------------------- 3. MLflow vs DVC
def _metrics_file(lineage: RunLineage) -> str | None:
    """The repo path of the run's metrics file: metrics/<m>/seed-<s>.json (metrics/<m>.json, the
    aggregate over seeds, is the parent run's); metrics/<m>.json for a run made before training seeds."""
    name = f"{lineage.model}.json" if lineage.seed is None else f"{seed_name(lineage.seed)}.json"
    return _metric_files(lineage).get(name, (None, None))[0]


def _artifact_rows(report: Report, lineage: RunLineage, client, tree: Worktree) -> None:
    from genlab.metrics.evaluate import metric_numbers, mlflow_metrics

    wanted = (("model", "train", lineage.seed_files("train")), ("samples", sample_kind(lineage), _sample_files(lineage)),
              ("metrics", "evaluate", _metric_files(lineage)))
    with tempfile.TemporaryDirectory() as tmp:
        for folder, kind, files in wanted:
            artifacts = [a for a in client.list_artifacts(lineage.run_id, folder) if not a.is_dir]
            if not artifacts:
                report.add(f"MLflow {folder}/", "absent", "—", MISMATCH, f"the run has no artifacts under {folder}/")
            for artifact in artifacts:
                name = Path(artifact.path).name
                if name not in files:
                    report.add(f"MLflow {artifact.path}", "logged", "—", MISMATCH,
                               f"no output of {kind}@{lineage.model} for {lineage.label} is named {name}")
                    continue
                path = files[name][0]
                local = client.download_artifacts(lineage.run_id, artifact.path, tmp)
                mine, theirs = sha256(Path(local)), sha256(tree.path / path)
                report.add(f"MLflow {artifact.path} = {path}", mine, theirs, MATCH if mine == theirs else MISMATCH,
                           "" if mine == theirs else "the run's artifact is not the file DVC tracks")
    metrics_rel = _metrics_file(lineage)
    metrics_path = tree.path / metrics_rel if metrics_rel else None
    if metrics_path is None or not metrics_path.exists() or not protocol_path(metrics_path).exists():
        report.add("metrics file", "—", "absent", MISMATCH,
                   f"the evaluate stage's metrics or protocol file of {lineage.label} is missing")
        return
    record = read_record(metrics_path)
    committed = mlflow_metrics(record)
    diffs = [f"{k}: MLflow {short(lineage.metrics.get(k))}, file {short(v)}" for k, v in sorted(committed.items())
             if lineage.metrics.get(k) != v]
    report.add(f"MLflow metrics = {metrics_rel}", f"{len(committed)} values", "", MISMATCH if diffs else MATCH,
               "\n".join(diffs))
    numbers, expected = json.loads(metrics_path.read_text()), metric_numbers(record)
    diffs = [f"{k}: {metrics_rel} {short(numbers.get(k))}, its protocol file {short(v)}"
             for k, v in sorted(expected.items()) if numbers.get(k) != v]
    report.add("metrics file = its protocol file", f"{len(expected)} values", "", MISMATCH if diffs else MATCH,
               "\n".join(diffs))


# --------------------------------------------------------------------------- 4/5. rebuild
def cuda_rule(lineage: RunLineage, tolerance: float) -> dict[str, Any]:
    """What the audit holds a CUDA-trained run to, as its JSON records it."""
    return {"trained_on": "cuda", "exact": False, "tolerance": tolerance,
            "rule": "CUDA training is not held to bytes: a retrained model file that differs is inconclusive and "
                    "every metric is compared within the tolerance (relative)",
            "flags": {k: v for k, v in lineage.params.items() if k.startswith("train.cuda.")}}


def _same_kind(lineage: RunLineage, kind: str) -> tuple[bool, str]:
    from genlab.tracking.lineage import compute_kind, environment

    if lineage.trained_on == "cuda":
        return False, "trained on CUDA (never bit-exact by rule; see the audit JSON's \"cuda\")"
    then, now = compute_kind(lineage.stage(kind)["environment"]), compute_kind(environment())
    diffs = [f"{k}: run {then.get(k)!r}, here {now.get(k)!r}" for k in then if then.get(k) != now.get(k)]
    return not diffs, "; ".join(diffs)


def _md5(path: Path) -> str | None:
    return file_digest(path) if path.is_file() else None


def _rebuild_rows(report: Report, lineage: RunLineage, tree: Worktree, tolerance: float, retrain: bool, log) -> None:
    """Re-run the model's stages in the worktree and compare the audited seed's own files.

    The stages run every seed of the model (a directory output's md5 in dvc.lock covers them all), so
    the seed's files are compared one by one: the md5 its run recorded (the stage's lineage, the
    files of each directory output) against the rebuilt file's. With --retrain, only this seed's
    model is deleted: the stage keeps the other seeds' finished runs and trains this one afresh."""
    from genlab.metrics.evaluate import mlflow_metrics

    model = lineage.model
    metrics_rel = _metrics_file(lineage)
    committed = read_record(tree.path / metrics_rel) if metrics_rel else {}
    exact_train, why_train = _same_kind(lineage, "train")
    exact_sample, why_sample = _same_kind(lineage, sample_kind(lineage))
    exact_eval, why_eval = _same_kind(lineage, "evaluate")
    # what the run recorded, else (an entry without its files) the worktree's file, which is dvc.lock's
    recorded = {kind: {path: md5 or _md5(tree.path / path) for path, md5 in files(lineage).values()}
                for kind, files in (("sample", _sample_files), ("evaluate", _metric_files))}
    stages = [f"{kind}@{model}" for kind in stage_kinds(lineage)[1:]]
    model_rel = lineage.seed_files("train").get("model.pt", (None, None))[0]
    if retrain:
        if model_rel is None:
            raise CannotAudit(f"the train stage's lineage of {lineage.label} lists no model.pt of it")
        for name in ("checkpoint.pt", "model.pt", "best.pt"):  # train this seed from scratch, not resume or keep
            (tree.path / model_rel).with_name(name).unlink(missing_ok=True)
        stages.insert(0, f"train@{model}")
    log(f"re-running {', '.join(stages)} in the worktree (GENLAB_TRACKING=off)")
    t0 = time.perf_counter()
    for stage in stages:
        tree.repro(stage)
    log(f"rebuilt in {time.perf_counter() - t0:.0f} s")

    if retrain:
        recorded_md5 = lineage.seed_files("train")["model.pt"][1]
        rebuilt_md5 = _md5(tree.path / model_rel)
        if recorded_md5 == rebuilt_md5:
            report.add(f"retrained {model_rel} (md5)", recorded_md5, rebuilt_md5, MATCH)
        elif exact_train:
            report.add(f"retrained {model_rel} (md5)", recorded_md5, rebuilt_md5, MISMATCH,
                       "retraining on the same kind of CPU gave other bytes")
        else:
            report.add(f"retrained {model_rel} (md5)", recorded_md5, rebuilt_md5, INCONCLUSIVE,
                       f"training is bit-exact only on the same kind of CPU: {why_train}")

    exact_samples = exact_sample and (exact_train or not retrain)
    for kind, exact, why in (("sample", exact_samples, why_sample), ("evaluate", exact_eval and exact_samples, why_eval)):
        for path, mine in sorted(recorded[kind].items()):
            theirs = _md5(tree.path / path)
            if mine == theirs:
                report.add(f"rebuilt {path}", mine, theirs, MATCH)
            elif theirs is None:
                stage = f"{sample_kind(lineage) if kind == 'sample' else kind}@{model}"
                report.add(f"rebuilt {path}", mine, theirs, MISMATCH, f"re-running {stage} did not write it")
            elif kind == "evaluate" or not exact:
                # metrics files differ whenever a number does; the numbers are compared one by one below
                report.add(f"rebuilt {path}", mine, theirs, INFO,
                           "bytes differ; see the metric rows" if exact else f"environment differs: {why}")
            else:
                report.add(f"rebuilt {path}", mine, theirs, MISMATCH,
                           "re-running the stage from the recorded model gave other bytes in the same environment")
    rebuilt = read_record(tree.path / metrics_rel) if metrics_rel and (tree.path / metrics_rel).exists() else {}
    exact = exact_eval and exact_samples and _same_protocol(committed, rebuilt)
    rebuilt_values, committed_values = mlflow_metrics(rebuilt), mlflow_metrics(committed)
    for key in sorted(set(committed_values) | set(rebuilt_values)):
        recorded_value = lineage.metrics.get(key, committed_values.get(key))
        verdict, detail = compare_number(committed_values.get(key), rebuilt_values.get(key), exact, tolerance)
        if verdict == MATCH and recorded_value != committed_values.get(key):
            verdict, detail = MISMATCH, f"MLflow holds {recorded_value}, the metrics file {committed_values.get(key)}"
        if verdict == MISMATCH and retrain and not exact_train:
            verdict, detail = INCONCLUSIVE, f"{detail}; retrained on another kind of CPU ({why_train})"
        report.add(f"metric {key}", committed_values.get(key), rebuilt_values.get(key), verdict, detail)


def _same_protocol(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("extractor", "compute_dtype", "runtime", "n_fake", "n_real", "weights_sha256")
    return all(a.get("fid", {}).get(k) == b.get("fid", {}).get(k) for k in keys)


# --------------------------------------------------------------------------- tags
def _tag_run(client, run_id: str, payload: dict[str, Any]) -> None:
    from mlflow.entities import RunTag

    stamp = payload["started"].replace(":", "").replace("-", "")
    tags = {"genlab.audit.verdict": payload["verdict"], "genlab.audit.date": payload["started"],
            "genlab.audit.commit": payload.get("commit", "—"),
            "genlab.audit.counts": ", ".join(f"{v} {k}" for k, v in sorted(payload["counts"].items()))}
    try:
        client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
        client.log_dict(run_id, payload, f"audits/audit-{stamp}.json")
    except Exception as err:  # a read-only store must not hide the verdict
        print(f"warning: could not tag run {run_id} with the audit's verdict: {err}", file=sys.stderr)


def render(result: AuditResult) -> str:
    s = result.summary
    seed = f" seed {s['seed']}" if s.get("seed") is not None else ""
    head = f"audit of run {s.get('run_id', s['run'])}" + (f" ({s['model']}{seed})" if s.get("model") else "")
    counts = ", ".join(f"{v} {k}" for k, v in sorted(s["counts"].items()))
    return (f"{head}\n{format_table(result.report)}\n\nverdict: {result.verdict.upper()} ({counts}) "
            f"in {s['seconds']:.0f} s")


__all__ = ["AuditResult", "CannotAudit", "EXIT_CANNOT", "EXIT_MISMATCH", "EXIT_PASS", "audit", "render",
           "INCONCLUSIVE", "MATCH", "MISMATCH", "WITHIN"]
