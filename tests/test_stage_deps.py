"""Every stage's `deps` and `params` in dvc.yaml cover the code it runs and the params keys it reads.

Otherwise `dvc.lock` lies: an edit to an unlisted file or key re-runs nothing and the recorded lineage
is wrong (DESIGN.md: "its `deps` in dvc.yaml name every source file and params key it uses").

Stages come from DVC's own API (`Repo(...).index.stages`): `foreach` expanded, `${...}` resolved.

**Code.** One subprocess pre-imports the heavy third-party libraries (torch, mlflow, ...; no genlab
module), then forks a fresh child per distinct stage script (not per stage instance). The child imports
the script as a module (its top-level imports run, `main` does not), then every `genlab` module named by any import
statement anywhere in the script, then, to a fixed point, every `genlab` module named by any import
statement anywhere in each loaded `genlab` module (the scripts and library import heavy code inside
functions on purpose, e.g. `config.load_params` imports `genlab.models`). Every loaded file under
`src/genlab/` counts, package `__init__.py` files and what they import included (they run). This is an
over-approximation only where a function's lazy import would not run in that stage. Each file must be
a dep of the stage or lie under a dep directory.

**Params.** Static, with `ast`: an abstract interpretation of the script's `main` that tracks values
derived from `load_params()` and records what is read:
  `params.<section>` used whole (passed to a function that is not genlab's, iterated, put in a dict)
  -> `<section>`; `params.<section>["k"]` / `.get("k")` -> `<section>.k`; `params.seed` -> `seed`;
  `params.model(k)` / `params.models[k]` -> `models.<k>` (k resolved to the stage's argument);
  `params.task(k)` -> `tasks.<k>`; `params.dataset(k)` -> `datasets.<k>`, narrowed by the attribute read: `.preprocessing`,
  `.image_shape` -> `datasets.<k>.pack`, `.source`, `.checksums` -> `datasets.<k>.download`.
A tracked value passed to a genlab function (resolved through `from genlab... import`) is followed
into that function's body, with the parameter bound to it. Anything else is strict: the whole params
object used in a way not listed above, or a key that cannot be resolved to a stage argument, fails
the test naming file and line. Validation inside `load_params()` is not a use: only the stage's code
counts. A listed key covers itself and every key under it (`eval` covers `eval.batch_size`).
"""
from __future__ import annotations

import ast
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # follows the imports of every stage in subprocesses (~15 s): not in `make test-fast`

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

# --------------------------------------------------------------------------- stages (DVC's view)


@dataclass(frozen=True)
class Stage:
    name: str
    script: str                  # repo-relative, e.g. pipeline/train.py
    args: tuple[str, ...]        # the script's argv[1:]
    deps: tuple[str, ...]        # repo-relative paths
    params: tuple[str, ...]      # params.yaml keys; ("",) means the whole file
    outs: tuple[str, ...] = ()   # repo-relative paths


def _stages() -> list[Stage]:
    from dvc.repo import Repo

    out = []
    with Repo(str(REPO)) as repo:
        for stage in repo.index.stages:
            words = shlex.split(stage.cmd if isinstance(stage.cmd, str) else " ".join(stage.cmd))
            assert words[0] in ("python", "python3") and words[1].endswith(".py"), \
                f"{stage.addressing}: cmd {stage.cmd!r} is not `python <script>.py ...`"
            keys: list[str] = []
            for p in stage.params:
                keys.extend(p.params if p.params else [""])
            deps = tuple(Path(d.def_path).as_posix().rstrip("/") for d in stage.deps
                         if type(d).__name__ != "ParamsDependency")
            outs = tuple(Path(o.def_path).as_posix().rstrip("/") for o in stage.outs)
            out.append(Stage(stage.addressing, words[1], tuple(words[2:]), deps, tuple(keys), outs))
    return out


STAGES = _stages()


def covered_by_deps(path: str, deps) -> bool:
    return any(path == d or path.startswith(d + "/") for d in deps)


def covered_by_params(key: str, listed) -> bool:
    return any(k == "" or key == k or key.startswith(k + ".") for k in listed)


# --------------------------------------------------------------------------- code the scripts run

_LOADER = r"""
import ast, importlib, json, os, runpy, sys
from pathlib import Path

src, scripts = Path(sys.argv[1]).resolve(), sys.argv[2:]
for heavy in ("numpy", "torch", "h5py", "PIL.Image", "yaml", "mlflow", "pandas", "tqdm", "torch_fidelity"):
    try:  # third-party only, imported once before forking: no genlab module is loaded here
        importlib.import_module(heavy)
    except ImportError:
        pass
assert not any(name.split(".")[0] == "genlab" for name in sys.modules)

def named(tree, package):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)

def load(names):
    for name in names:
        if name.split(".")[0] != "genlab":
            continue
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:  # `from genlab.x import function`: that name is no module
            if err.name != name:
                raise

def genlab_files():
    return {str(Path(m.__file__).resolve().relative_to(src.parent)) for m in list(sys.modules.values())
            if getattr(m, "__file__", None) and Path(m.__file__).resolve().is_relative_to(src)}

def validates_models(tree):
    # load_params() without models=False validates the model entries, which imports the model
    # registry (genlab.config loads it by name, so no import statement shows it).
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "load_params":
            off = any(k.arg == "models" and isinstance(k.value, ast.Constant) and k.value.value is False
                      for k in node.keywords)
            if not off:
                return True
    return False

def files_of(script):
    runpy.run_path(script, run_name="__stage_deps__")
    tree = ast.parse(Path(script).read_text())
    load(named(tree, ""))
    if validates_models(tree):
        load(["genlab.models"])
    scanned = set()
    while todo := genlab_files() - scanned:
        for file in todo:
            scanned.add(file)
            module = file[:-len(".py")].removesuffix("/__init__").replace("/", ".").removeprefix("src.")
            package = module if file.endswith("__init__.py") else module.rpartition(".")[0]
            load(named(ast.parse(Path(file).read_text()), package))
    return sorted(scanned)

for script in scripts:  # a fresh child per script, so nothing one loads counts for another
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            out = json.dumps({"script": script, "files": files_of(script)})
        except BaseException as err:
            out = json.dumps({"script": script, "error": f"{type(err).__name__}: {err}"})
        os.write(write, out.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        print(f.read())
    os.waitpid(pid, 0)
"""


def loaded_files(scripts) -> dict[str, list[str]]:
    """script -> the files under src/genlab/ it loads; one subprocess, a forked child per script."""
    proc = subprocess.run([sys.executable, "-c", _LOADER, str(SRC), *scripts], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"the import subprocess failed:\n{proc.stderr[-3000:]}"
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    errors = [f"{r['script']}: {r['error']}" for r in results if "error" in r]
    assert not errors, "importing a stage's code failed:\n" + "\n".join(errors)
    return {r["script"]: r["files"] for r in results}


@pytest.fixture(scope="module")
def code_by_script() -> dict[str, list[str]]:
    files = loaded_files(sorted({s.script for s in STAGES}))
    assert set(files) == {s.script for s in STAGES}
    return files


def uncovered_code(stage: Stage, files) -> list[str]:
    return [f for f in [stage.script, *files] if not covered_by_deps(f, stage.deps)]


# --------------------------------------------------------------------------- params the scripts read

MAPPING_SECTIONS = ("data", "train", "sample", "eval", "evaluator", "report")
DATASET_ATTRS = {"preprocessing": "pack", "image_shape": "pack", "source": "download",
                 "checksums": "download", "num_classes": None, "name": None}


class Unclassified(Exception):
    """A params-derived value used in a way this checker cannot map to keys."""


@dataclass(frozen=True)
class V:
    """An abstract value. kind: params | section | models | datasets | dataset | leaf | method | arg | none."""

    kind: str
    path: str = ""
    extra: object = None        # method: (owner V, method name); arg: argv index


def _module_file(module: str) -> Path | None:
    base = SRC / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=None)
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _imported_names(tree: ast.AST) -> dict[str, tuple[str, str]]:
    """name -> (module, name) for every `from genlab.x import name [as alias]` anywhere in tree."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("genlab") and not node.level:
            for alias in node.names:
                out[alias.asname or alias.name] = (node.module, alias.name)
    return out


def _find_function(path: Path, name: str, depth: int = 0) -> tuple[Path, ast.FunctionDef] | None:
    tree = _parse(path)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return path, node
    target = _imported_names(tree).get(name)
    if target and depth < 5:
        file = _module_file(target[0])
        return _find_function(file, target[1], depth + 1) if file else None
    return None


class ParamsReads:
    """The params keys one stage's script reads, given its argv (see the module docstring)."""

    def __init__(self, script: Path, args: tuple[str, ...]):
        self.args = args
        self.keys: set[str] = set()
        self._done: set = set()
        main = _find_function(script, "main")
        assert main, f"{script}: no main()"
        argv = main[1].args.args[0].arg
        self.function(main[0], main[1], {argv: V("argv")})

    # -- helpers
    def fail(self, path: Path, node: ast.AST, what: str):
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        raise Unclassified(f"{shown}:{getattr(node, 'lineno', '?')}: {what}: "
                           f"{ast.unparse(node)[:120]}")

    def key_of(self, value: V | None, path: Path, node: ast.AST) -> str:
        if value is not None and value.kind == "arg" and value.extra < len(self.args):
            return self.args[value.extra]
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        self.fail(path, node, "cannot resolve this name to a stage argument")

    def record(self, value: V, path: Path, node: ast.AST):
        if value.kind == "params":
            self.fail(path, node, "the whole params object is used in a way this check cannot classify")
        if value.kind in ("section", "models", "datasets", "tasks", "dataset", "leaf"):
            self.keys.add(value.path)
        elif value.kind == "method":
            self.fail(path, node, "a params method is used without being called")

    # -- abstract evaluation of one expression (no recording)
    def ev(self, node: ast.AST, env: dict, path: Path) -> V | None:
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == "load_params") or \
                    (isinstance(func, ast.Attribute) and func.attr == "load_params"):
                return V("params")
            if isinstance(func, ast.Name) and func.id in ("positional", "map") and \
                    any(self.ev(a, env, path) == V("argv") for a in ast.walk(node) if a is not node):
                return V("positional") if func.id == "positional" else None
            owner = self.ev(func, env, path)
            if owner is not None and owner.kind == "method":
                target, method = owner.extra
                if method == "seeds_of":  # a model's own seeds (models.<k>, read by the stage anyway) or `seeds`
                    return V("leaf", "seeds")
                if method in ("model", "dataset", "task") and len(node.args) == 1:
                    key = self.key_of(self.ev(node.args[0], env, path), path, node.args[0])
                    if method == "task":
                        return V("leaf", f"tasks.{key}")
                    return V("leaf", f"models.{key}") if method == "model" else V("dataset", f"datasets.{key}")
                if method == "get" and node.args and isinstance(node.args[0], ast.Constant):
                    return V("leaf", f"{target.path}.{node.args[0].value}")
            return None
        if isinstance(node, ast.Attribute):
            owner = self.ev(node.value, env, path)
            if owner is None:
                return None
            if owner.kind == "params":
                if node.attr in MAPPING_SECTIONS:
                    return V("section", node.attr)
                if node.attr in ("seed", "seeds"):
                    return V("leaf", node.attr)
                if node.attr in ("models", "datasets", "tasks"):
                    return V(node.attr, node.attr)
                if node.attr in ("model", "dataset", "task", "seeds_of"):
                    return V("method", extra=(owner, node.attr))
                self.fail(path, node, "unknown attribute of params")
            if owner.kind == "section" and node.attr == "get":
                return V("method", extra=(owner, "get"))
            if owner.kind == "dataset" and node.attr in DATASET_ATTRS:
                section = DATASET_ATTRS[node.attr]
                return V("leaf", f"{owner.path}.{section}") if section else V("none")
            return None
        if isinstance(node, ast.Subscript):
            owner = self.ev(node.value, env, path)
            if owner is None:
                return None
            index = node.slice
            if owner.kind == "section" and isinstance(index, ast.Constant) and isinstance(index.value, str):
                return V("leaf", f"{owner.path}.{index.value}")
            if owner.kind in ("models", "datasets"):
                key = self.key_of(self.ev(index, env, path), path, index)
                return V("leaf", f"models.{key}") if owner.kind == "models" else V("dataset", f"datasets.{key}")
            if owner.kind == "positional" and isinstance(index, ast.Constant):
                return V("arg", extra=index.value)
            return None
        return None

    # -- one function body, with its parameters bound
    def function(self, path: Path, fn: ast.FunctionDef, env: dict):
        sig = (path, fn.name, tuple(sorted((k, v) for k, v in env.items())))
        if sig in self._done:
            return
        self._done.add(sig)
        env = dict(env)
        parents = {child: parent for parent in ast.walk(fn) for child in ast.iter_child_nodes(parent)}
        bound = set()
        for node in ast.walk(fn):  # bindings, in source order (flow-insensitive)
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                value, target = self.ev(node.value, env, path), node.targets[0]
                if isinstance(target, ast.Name) and value is not None and value.kind != "none":
                    env[target.id] = value
                    bound.add(node.value)
                elif isinstance(target, ast.Tuple) and value is not None and value.kind == "positional":
                    for i, elt in enumerate(target.elts):
                        if isinstance(elt, ast.Name):
                            env[elt.id] = V("arg", extra=i)
                    bound.add(node.value)
        imported = _imported_names(_parse(path))
        for node in ast.walk(fn):
            if node is fn or isinstance(getattr(node, "ctx", None), ast.Store):
                continue
            value = self.ev(node, env, path)
            if value is None or value.kind in ("none", "arg", "argv", "positional") or node in bound:
                continue
            parent = parents.get(node)
            if parent is not None and self.ev(parent, env, path) is not None and not (
                    isinstance(parent, ast.Call) and node in parent.args):
                continue  # refined by the enclosing expression, which is classified itself
            if isinstance(parent, ast.Call) and (node in parent.args or node in
                                                 [k.value for k in parent.keywords]) \
                    and value.kind != "leaf" and self.follow(parent, env, path, imported):
                continue
            self.record(value, path, node)

    def follow(self, call: ast.Call, env: dict, path: Path, imported) -> bool:
        """Analyse a genlab callee with its parameters bound; False if it is not genlab's."""
        if not isinstance(call.func, ast.Name) or any(isinstance(a, ast.Starred) for a in call.args) or \
                any(k.arg is None for k in call.keywords):
            return False
        found = _find_function(path, call.func.id) if call.func.id in imported or any(
            isinstance(n, ast.FunctionDef) and n.name == call.func.id for n in _parse(path).body) else None
        if not found:
            return False
        params = [a.arg for a in found[1].args.posonlyargs + found[1].args.args]
        callee_env = {}
        for name, arg in [*zip(params, call.args), *((k.arg, k.value) for k in call.keywords)]:
            value = self.ev(arg, env, path)
            if value is not None and value.kind != "none":
                callee_env[name] = value
        self.function(*found, callee_env)
        return True


def params_read(stage: Stage) -> set[str]:
    return ParamsReads(REPO / stage.script, stage.args).keys


def uncovered_params(stage: Stage, keys) -> list[str]:
    return sorted(k for k in keys if not covered_by_params(k, stage.params))


# --------------------------------------------------------------------------- tests


def test_every_stage_is_analysed():
    assert {s.name.split("@")[0] for s in STAGES} >= {"download", "pack", "train", "sample", "evaluate", "report"}


def test_deps_cover_the_code_each_stage_runs(code_by_script):
    problems = {s.name: missing for s in STAGES if (missing := uncovered_code(s, code_by_script[s.script]))}
    assert not problems, "stages run code their deps do not list:\n" + "\n".join(
        f"  {name}: {', '.join(files)}" for name, files in problems.items())


def path_arguments(stage: Stage) -> list[str]:
    """The stage's arguments that name files: with a `/`, or a top-level folder of some stage's outputs."""
    tops = {o.split("/")[0] for s in STAGES for o in s.outs}
    return [a for a in stage.args if "/" in a or a in tops]


def writes_into(path: str, outs) -> bool:
    """`path` is a folder the stage writes its outs into (the report's `reports`: each file an out of its own)."""
    return any(str(out).startswith(path.rstrip("/") + "/") for out in outs)


def test_every_path_a_stage_is_given_is_a_dep_or_an_out():
    """A file a stage reads but does not list (e.g. evaluate reading models/<m>/mlflow_run.json, the
    run it logs into) is a file whose change re-runs nothing: a re-trained model's new MLflow run would
    get no metrics, and the report would name the old run."""
    problems = {s.name: missing for s in STAGES
                if (missing := [a for a in path_arguments(s) if not covered_by_deps(a, s.deps + s.outs)
                                and not writes_into(a, s.outs)])}
    assert not problems, "stages are given paths that are neither deps nor outs:\n" + "\n".join(
        f"  {name}: {', '.join(paths)}" for name, paths in problems.items())


def test_params_cover_the_keys_each_stage_reads():
    problems = {s.name: missing for s in STAGES if (missing := uncovered_params(s, params_read(s)))}
    assert not problems, "stages read params keys their params do not list:\n" + "\n".join(
        f"  {name}: {', '.join(keys)}" for name, keys in problems.items())


# -- the checker can fail: drop what a stage needs from a copy of its resolved lists


def _first(kind: str) -> Stage:
    return next(s for s in STAGES if s.name.startswith(kind + "@"))


def test_checker_reports_a_missing_code_dep(code_by_script):
    stage = _first("train")
    files = code_by_script[stage.script]
    assert "src/genlab/training/loop.py" in files and "src/genlab/config.py" in files
    trimmed = Stage(stage.name, stage.script, stage.args,
                    tuple(d for d in stage.deps if d not in ("src/genlab/training", "src/genlab")), stage.params)
    assert "src/genlab/training/loop.py" in uncovered_code(trimmed, files)
    assert uncovered_code(stage, files) == []


def test_checker_reports_missing_params():
    sample, train = _first("sample"), _first("train")
    assert {"train.device", "seeds", f"models.{sample.args[0]}"} <= params_read(sample)
    # train_model(params, ...) is followed into genlab.training.loop: it reads data.* and train.*
    assert {"data.train_limit", "train.precision", f"models.{train.args[0]}"} <= params_read(train)
    trimmed = Stage(sample.name, sample.script, sample.args, sample.deps,
                    tuple(k for k in sample.params if k not in ("train.device", "train")))
    assert uncovered_params(trimmed, params_read(sample)) == ["train.device"]


def test_checker_rejects_what_it_cannot_classify(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text("from genlab.config import load_params\n"
                      "def main(argv):\n    params = load_params()\n    print(vars(params))\n")
    with pytest.raises(Unclassified, match="whole params object"):
        ParamsReads(script, ())
