"""The parts of lineage and audit that need no pipeline: git state, code identity, comparisons, the CLI."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from genlab.audit.checks import MATCH, MISMATCH, WITHIN, compare_number, entry_differences, status_problems
from genlab.tracking.lineage import compute_kind, environment, git_state, loaded_code
from projects import BIN, REPO, git

ENTRY = {"cmd": "python pipeline/train.py gan", "deps": [{"path": "src/genlab/models", "md5": "a.dir"}],
         "params": {"params.yaml": {"seed": 0, "models.gan": {"lr": 0.001}}},
         "outs": [{"path": "models/gan", "md5": "b.dir"}]}


def test_git_state_leaves_out_dvc_lock_outputs_and_dvcs_gitignores(tmp_path):
    git(tmp_path, "init", "-q")
    for name in ("dvc.lock", "code.py", "metrics/m.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("v1\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "v1")
    assert git_state(tmp_path, {"metrics/m.json"})["dirty_paths"] == []
    (tmp_path / "dvc.lock").write_text("v2\n")
    (tmp_path / "metrics" / "m.json").write_text("v2\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / ".gitignore").write_text("/gan\n")
    state = git_state(tmp_path, {"metrics/m.json"})
    assert state["dirty_paths"] == [] and len(state["commit"]) == 40
    (tmp_path / "code.py").write_text("v2\n")
    (tmp_path / "new_module.py").write_text("untracked code counts too\n")
    assert git_state(tmp_path, {"metrics/m.json"})["dirty_paths"] == ["code.py", "new_module.py"]


def test_loaded_code_names_modules_that_are_not_the_repositorys(tmp_path):
    import genlab.tracking.lineage  # noqa: F401  (loaded, so it is compared)

    shutil.copytree(REPO / "src", tmp_path / "src")
    assert loaded_code(tmp_path)["differs_from_repo"] == []
    target = tmp_path / "src" / "genlab" / "tracking" / "lineage.py"
    target.write_text(target.read_text() + "# edited\n")
    assert loaded_code(tmp_path)["differs_from_repo"] == ["src/genlab/tracking/lineage.py"]


def test_environment_names_the_cpu_kernels_and_pinned_packages():
    env = environment()
    assert env["cpu"]["model"] and isinstance(env["cpu"]["flags"], list)
    assert env["packages"]["torch"] and env["packages"]["mlflow"] and env["packages"]["dvc"]
    kind = compute_kind(env)
    assert kind["torch"] == env["torch"] and kind["cpu"] == env["cpu"]["model"]
    assert compute_kind({**env, "torch_threads": env["torch_threads"] + 1}) != kind


def test_entry_differences_name_the_field_and_both_values():
    assert entry_differences(ENTRY, ENTRY) == []
    other = {**ENTRY, "outs": [{"path": "models/gan", "md5": "c.dir"}],
             "params": {"params.yaml": {"seed": 1, "models.gan": {"lr": 0.001}}}}
    diffs = entry_differences(ENTRY, other)
    assert any(d.startswith("outs models/gan: recorded b.dir") for d in diffs)
    assert "params params.yaml:seed: recorded 0, dvc.lock 1" in diffs


def test_status_problems_are_readable_lines():
    status = {"evaluate@gan": [{"changed outs": {"metrics/gan.json": "modified"}}, "always changed"]}
    assert status_problems(status) == ["evaluate@gan: changed outs: metrics/gan.json (modified)",
                                       "evaluate@gan: always changed"]
    assert status_problems({}) == []


@pytest.mark.parametrize("recorded,rebuilt,exact,verdict", [
    (100.0, 100.0, True, MATCH),
    (100.0, 100.0001, True, MISMATCH),      # same environment: any difference is a mismatch
    (100.0, 100.5, False, WITHIN),          # another environment: 0.5% within 1%
    (100.0, 103.0, False, MISMATCH),
    (None, 1.0, False, MISMATCH),
])
def test_metrics_compare_exactly_or_within_the_tolerance(recorded, rebuilt, exact, verdict):
    assert compare_number(recorded, rebuilt, exact, 0.01)[0] == verdict


def test_genlab_command_lists_its_subcommands():
    out = subprocess.run([str(BIN / "genlab"), "--help"], capture_output=True, text=True, check=True).stdout
    assert "audit" in out and "env" in out
    proc = subprocess.run([str(BIN / "genlab"), "audit", "--help"], capture_output=True, text=True, check=True)
    assert "--retrain" in proc.stdout and "--no-rebuild" in proc.stdout
