"""`genlab audit` end to end: a tiny pipeline of two models with two training seeds each in a temporary
git repo, pushed to a DVC remote in a temporary directory, cloned afresh and audited (one seed's run:
a model name audits its first seed, `<model>@<seed>` another); then each tampering a team must catch,
each in a clone of its own: a hand-edited metrics file, swapped samples, a model file replaced after
the run, a run made from uncommitted code; and a `dvc exp run` experiment, audited through its own
commit from its parent run's id.

The MLflow store stays in the first repo (as a team's server would): clones point at it with
MLFLOW_TRACKING_URI. The audit itself runs the real `genlab` console script.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from projects import BIN, MIRROR, dvc, env_for, git, make_project, tiny_params

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not MIRROR.exists(), reason="needs `apt-get install dataset-fashion-mnist`"),
]

MODELS = {"gan": {"type": "gan", "dataset": "fashion-mnist", "epochs": 2, "batch_size": 32},
          "dcgan": {"type": "dcgan", "dataset": "fashion-mnist", "epochs": 2, "batch_size": 32, "width": 8}}
SEEDS = (0, 1)


def run_id(repo: Path, name: str, seed: int | None = None) -> str:
    """A model's parent run (seed None) or one training seed's run, as the train stage saved it."""
    directory = repo / "models" / name / ("" if seed is None else f"seed-{seed}")
    return json.loads((directory / "mlflow_run.json").read_text())["run_id"]


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("audit")
    repo = make_project(base / "origin", {**tiny_params(MODELS), "seeds": list(SEEDS)})
    remote = base / "remote"
    dvc(repo, "remote", "add", "-d", "store", str(remote))
    git(repo, "commit", "-q", "-am", "a DVC remote")
    dvc(repo, "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "results")
    dvc(repo, "push")
    parents = {name: run_id(repo, name) for name in MODELS}
    runs = {(name, seed): run_id(repo, name, seed) for name in MODELS for seed in SEEDS}
    return {"repo": repo, "base": base, "remote": remote, "parents": parents, "runs": runs,
            "store": f"sqlite:///{repo / 'mlflow.db'}"}


def clone(origin: dict, name: str, pull: bool = True) -> Path:
    path = origin["base"] / name
    git(origin["base"], "clone", "-q", str(origin["repo"]), str(path))
    if pull:
        dvc(path, "pull", "-q")
    return path


def audit(origin: dict, repo: Path, run: str, *args: str) -> tuple[int, dict, str]:
    report = repo.parent / f"{repo.name}-audit-{run[:8]}.json"
    proc = subprocess.run([str(BIN / "genlab"), "audit", run, "--json", str(report), *args], cwd=repo,
                          env=env_for(repo, MLFLOW_TRACKING_URI=origin["store"]), capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    assert report.exists(), output
    return proc.returncode, json.loads(report.read_text()), output


def commit_and_audit(origin: dict, repo: Path, run: str, *stages: str) -> tuple[int, dict, str]:
    """Record a tampered output as DVC would (`dvc commit`), commit it, and audit the run."""
    dvc(repo, "commit", "-f", "-q", *stages)
    git(repo, "commit", "-q", "-am", "better results")
    return audit(origin, repo, run, "--no-rebuild")


def mismatches(report: dict) -> str:
    return "\n".join(f"{c['check']}: {c['detail']}" for c in report["checks"] if c["verdict"] == "MISMATCH")


def client(origin):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=origin["store"])


def test_every_seed_run_records_its_stages_dvc_lock_entries_git_state_and_environment(origin):
    repo, mlflow = origin["repo"], client(origin)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    head_of_run = git(repo, "rev-parse", "HEAD~1").strip()  # the results commit came after the run
    for (name, seed), run in origin["runs"].items():
        for kind in ("train", "evaluate"):  # evaluate draws the samples too
            stage = f"{kind}@{name}"
            path = mlflow.download_artifacts(run, f"lineage/{stage}.json", str(origin["base"] / f"{name}-{seed}"))
            record = json.loads(Path(path).read_text())
            assert record["dvc_lock"] == lock[stage], (stage, seed)  # computed in the stage, equal to what DVC wrote
            assert record["git"] == {"commit": head_of_run, "dirty_paths": []}, stage
            assert record["code"]["differs_from_repo"] == [], stage
            env = record["environment"]
            assert env["torch"].startswith("2.") and env["python"].count(".") == 2
            assert env["cpu"]["model"] and "flags" in env["cpu"] and env["packages"]["dvc"]
        tags = mlflow.get_run(run).data.tags
        assert tags["git.commit"] == head_of_run and tags["env.cpu"] and tags["git.dirty"] == "False"
        assert tags["genlab.seed"] == str(seed) and tags["mlflow.parentRunId"] == origin["parents"][name]
    for name, parent in origin["parents"].items():
        tags = mlflow.get_run(parent).data.tags
        assert tags["genlab.role"] == "parent" and tags["git.commit"] == head_of_run and tags["git.dirty"] == "False"


def test_fresh_clone_audits_from_the_remote_then_pull_restores_everything(origin):
    repo = clone(origin, "fresh", pull=False)  # an empty DVC cache: the audit must pull from the remote
    code, report, output = audit(origin, repo, "gan")  # a model name: its first seed's run
    assert code == 0, output
    assert report["verdict"] == "pass" and report["run_id"] == origin["runs"]["gan", 0] and report["seed"] == 0
    assert report["parent_run_id"] == origin["parents"]["gan"]
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["rebuilt samples/gan/seed-0.h5"]["verdict"] == "match"
    assert not any("seed-1" in name for name in checks), sorted(checks)  # the other seed's files are not its own
    assert checks["metric fid"]["verdict"] == "match" and checks["metric fid"]["recorded"] > 0
    assert checks["MLflow model/model.pt = models/gan/seed-0/model.pt"]["verdict"] == "match"
    assert checks["MLflow metrics = metrics/gan/seed-0.json"]["verdict"] == "match"
    assert "verdict: PASS" in output and "(gan seed 0)" in output
    assert client(origin).get_run(origin["runs"]["gan", 0]).data.tags["genlab.audit.verdict"] == "pass"

    dvc(repo, "pull", "-q")
    assert (repo / "models" / "gan" / "seed-0" / "model.pt").exists()
    assert (repo / "data" / "packed" / "fashion-mnist.h5").exists()
    assert "up to date" in dvc(repo, "status").stdout


def test_retrain_rebuilds_one_seeds_model_byte_for_byte(origin):
    # seed 1 alone is trained again (the stage keeps seed 0's finished run): the same bytes as when it
    # was trained after seed 0 in one process
    code, report, output = audit(origin, origin["repo"], "dcgan@1", "--retrain")
    assert code == 0, output
    assert report["run_id"] == origin["runs"]["dcgan", 1] and report["seed"] == 1
    checks = {c["check"]: c for c in report["checks"]}
    row = checks["retrained models/dcgan/seed-1/model.pt (md5)"]
    assert row["verdict"] == "match" and row["recorded"] == row["rebuilt"]
    assert checks["rebuilt samples/dcgan/seed-1.h5"]["verdict"] == "match"
    assert checks["MLflow samples/seed-1.png = plots/samples/dcgan/seed-1.png"]["verdict"] == "match"


def test_hand_edited_metrics_file_fails(origin):
    repo = clone(origin, "edited-metrics")
    path = repo / "metrics" / "gan" / "seed-0.json"
    numbers = json.loads(path.read_text())
    numbers["fid"] = numbers["fid"] / 2
    path.write_text(json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    git(repo, "commit", "-q", "-am", "a better FID")
    code, report, output = audit(origin, repo, "gan", "--no-rebuild")
    assert code == 1, output
    assert "metrics/gan (modified)" in mismatches(report)
    assert "fid: metrics/gan/seed-0.json" in mismatches(report)  # the file's FID is not its protocol record's

    protocol = repo / "metrics" / "gan" / "seed-0.protocol.json"  # both edited alike: the run's logged FID differs
    record = json.loads(protocol.read_text())
    record["fid"]["value"] = numbers["fid"]
    protocol.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    git(repo, "commit", "-q", "-am", "and its protocol file")
    code, report, output = audit(origin, repo, "gan", "--no-rebuild")
    assert code == 1 and re.search(r"^fid_n\d+: MLflow", mismatches(report), re.M), output


def test_swapped_samples_of_two_seeds_fail(origin):
    repo = clone(origin, "swapped-samples")
    first, second = repo / "plots" / "samples" / "gan" / "seed-0.png", repo / "plots" / "samples" / "gan" / "seed-1.png"
    tmp = repo / "swap.png"
    shutil.move(first, tmp), shutil.move(second, first), shutil.move(tmp, second)
    code, report, output = commit_and_audit(origin, repo, "gan@1", "evaluate@gan")
    assert code == 1, output
    assert report["run_id"] == origin["runs"]["gan", 1] and report["seed"] == 1
    text = mismatches(report)
    assert "outs plots/samples/gan" in text and "MLflow samples/seed-1.png = plots/samples/gan/seed-1.png" in text


def test_model_replaced_after_the_run_fails(origin):
    repo = clone(origin, "replaced-model")
    shutil.copy(repo / "models" / "dcgan" / "seed-0" / "model.pt", repo / "models" / "gan" / "seed-0" / "model.pt")
    code, report, output = commit_and_audit(origin, repo, "gan", "train@gan")
    assert code == 1, output
    text = mismatches(report)
    assert "outs models/gan" in text and "MLflow model/model.pt = models/gan/seed-0/model.pt" in text


def test_outputs_in_no_cache_or_remote_cannot_be_audited(origin):
    repo = clone(origin, "no-data", pull=False)
    dvc(repo, "remote", "modify", "--local", "store", "url", str(origin["base"] / "empty-remote"))
    code, report, output = audit(origin, repo, "gan", "--no-rebuild")
    assert code == 2, output
    assert report["verdict"] == "cannot-audit" and "neither the DVC cache nor the remotes" in report["checks"][-1]["detail"]


def test_run_from_uncommitted_code_cannot_pass(origin):
    repo = clone(origin, "uncommitted-code")
    module = repo / "src" / "genlab" / "models" / "__init__.py"
    module.write_text(module.read_text() + "# an edit that is never committed\n")
    for name in ("checkpoint.pt", "model.pt", "best.pt"):  # seed 0 is trained again (a finished seed is kept)
        (repo / "models" / "gan" / "seed-0" / name).unlink()
    dvc(repo, "repro", "-q", "evaluate@gan", MLFLOW_TRACKING_URI=origin["store"])
    run = run_id(repo, "gan", 0)
    assert run != origin["runs"]["gan", 0] and run_id(repo, "gan", 1) == origin["runs"]["gan", 1]
    assert client(origin).get_run(run).data.tags["git.dirty"] == "True"

    code, report, output = audit(origin, repo, run, "--no-rebuild")
    assert code == 2, output  # nothing records it
    assert "uncommitted changes (src/genlab/models/__init__.py)" in report["checks"][-1]["detail"]

    git(repo, "add", "dvc.lock", "metrics", "plots")  # the results, but not the code that made them
    git(repo, "commit", "-q", "-m", "results of an edit")
    code, report, output = audit(origin, repo, run, "--no-rebuild")
    assert code == 1, output
    assert "changed deps: src/genlab/models (modified)" in mismatches(report)


def test_dvc_exp_run_is_audited_through_its_experiment_commit(origin):
    repo = clone(origin, "experiment")
    dvc(repo, "exp", "run", "-q", "-n", "longer", "-S", "models.gan.epochs=3", MLFLOW_TRACKING_URI=origin["store"])
    parent, first = run_id(repo, "gan"), run_id(repo, "gan", 0)
    assert parent != origin["parents"]["gan"]  # other params: a new parent run, every seed trained again
    for run in (parent, first):
        tags = client(origin).get_run(run).data.tags
        assert tags["dvc.exp_name"] == "longer" and tags["git.dirty"] == "True"  # params.yaml set by -S

    git(repo, "checkout", "-q", "--", ".")  # back to the baseline: only the experiment's ref holds the run
    code, report, output = audit(origin, repo, parent)  # a parent run: its first seed's run is audited
    assert code == 0, output
    assert report["run_id"] == first and report["seed"] == 0 and report["parent_run_id"] == parent
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["audited commit"]["recorded"].startswith("experiment longer")
    assert checks["metric fid"]["verdict"] == "match"
