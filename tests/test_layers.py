"""The package's layers (pyproject.toml's import-linter contract) and the stage deps dvc.yaml derives from them.

A module imports only from layers below its own; `lint-imports` checks every import, lazy ones too. A stage
then depends on its script, on genlab/config.py (params validation, which every stage runs), on the
top-level modules or folders its script imports and on everything in the layers below those: no code a
stage can run lies outside its deps. (Validation also reads the model and metric registries to check
params.yaml; it changes no output, so a stage does not depend on them for that.)
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"
ALWAYS = ("src/genlab/__init__.py", "src/genlab/config.py")


def layers() -> list[list[str]]:
    """The contract's layers, top first, each a list of module names (genlab.X)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [[m.strip() for m in layer.replace("|", ":").split(":")] for layer in contract["layers"]]


def member_path(module: str) -> str:
    rel = Path("src", *module.split("."))
    return str(rel) if (REPO / rel).is_dir() else f"{rel}.py"


def imported_members(script: Path) -> set[str]:
    """The top-level package members (genlab.X) a stage script imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {".".join(n.split(".")[:2]) for n in names if n.startswith("genlab.")} - {"genlab.config"}


def layer_deps(script: str) -> list[str]:
    """What the layer rule says a stage running `script` depends on, in the order dvc.yaml lists it."""
    mine = imported_members(REPO / script)
    ranked = layers()
    top = min(i for i, layer in enumerate(ranked) if mine & set(layer))
    members = [m for m in ranked[top] if m in mine] + [m for layer in ranked[top + 1:] for m in layer]
    return [script, *ALWAYS, *(path for path in map(member_path, members) if path not in ALWAYS)]


def stage_code_deps() -> dict[str, tuple[str, list[str]]]:
    """stage name -> (its script, the deps under pipeline/ and src/ that dvc.yaml lists)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        script = body["cmd"].split()[1]
        out[name] = (script, [d for d in body["deps"] if isinstance(d, str) and d.startswith(("pipeline/", "src/"))])
    return out


def lint(root: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--config", str(config), "--no-cache"], cwd=root, capture_output=True,
                          text=True, env={"PATH": str(LINT.parent), "PYTHONPATH": str(root / "src")})


def test_the_package_imports_only_downward():
    out = lint(REPO, REPO / "pyproject.toml")
    assert out.returncode == 0 and "1 kept, 0 broken" in out.stdout, out.stdout + out.stderr


def test_the_contract_catches_an_upward_import(tmp_path):
    shutil.copytree(REPO / "src" / "genlab", tmp_path / "src" / "genlab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    base = tmp_path / "src" / "genlab" / "models" / "base.py"
    base.write_text(base.read_text() + "\n\ndef _upward():\n    from genlab.training import loop  # noqa\n")
    out = lint(tmp_path, REPO / "pyproject.toml")
    assert out.returncode != 0 and "genlab.models.base -> genlab.training.loop" in out.stdout, out.stdout


def test_no_module_imports_itself_back():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("genlab", exclude_type_checking_imports=True)
    cycles = sorted({tuple(sorted((a, b))) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
                     if graph.find_shortest_chain(importer=b, imported=a)})
    assert not cycles, f"import circles through: {cycles}"


def test_each_stage_depends_on_what_its_layer_may_import():
    wrong = {}
    for name, (script, deps) in stage_code_deps().items():
        want = layer_deps(script)
        if deps != want:
            wrong[name] = "\n".join(f"        - {d}" for d in want)
    assert not wrong, "dvc.yaml: a stage's code deps must be what its layer may import; write them as:\n" + \
        "\n".join(f"{name}:\n{deps}" for name, deps in wrong.items())


def test_the_layer_rule_follows_the_script():
    assert layer_deps("pipeline/pack.py")[3:] == [member_path(m) for layer in layers()[layers().index(
        next(layer for layer in layers() if "genlab.data" in layer)):] for m in layer]
    train, evaluate = layer_deps("pipeline/train.py"), layer_deps("pipeline/evaluate.py")
    assert "src/genlab/training" in train and "src/genlab/training" not in evaluate
    assert "src/genlab/models" in evaluate and "src/genlab/models" not in layer_deps("pipeline/reference.py")
    assert "src/genlab/serving" in layer_deps("pipeline/report.py") and "src/genlab/serving" not in train
