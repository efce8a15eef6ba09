"""Lineage: what a stage ran on and made, recorded in its MLflow run so the run can be audited.

At the end of each model stage (train, sample, evaluate) `stage_lineage` computes, with DVC's own
code, the entry DVC is about to write for that stage into dvc.lock: the md5 of every dep, the value
of every params key, the md5 of every output (plus, for directory outputs, each file's md5). Beside
it: the git commit, the paths that differed from it, the DVC experiment (if any) and the
environment (Python, torch, CUDA/cuDNN, the CPU model and its flags, every pinned package).
`genlab audit` finds the commit whose dvc.lock holds the same entry and rebuilds from there.

Nothing here reads the clock into an output: lineage goes to MLflow only, never into DVC outputs.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

# CPU flags that decide which kernels PyTorch, oneDNN and ONNX Runtime run (and so the float bits).
KERNEL_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni")


def _git(root: Path, *args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """The CPU as /proc/cpuinfo names it: model, vendor, family/model ids, kernel-relevant flags."""
    info: dict[str, Any] = {"model": platform.processor() or platform.machine(), "logical_cpus": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    info.update(model=fields.get("model name", info["model"]), vendor=fields.get("vendor_id"),
                family=fields.get("cpu family"), model_id=fields.get("model"),
                flags=sorted(f for f in KERNEL_FLAGS if f in flags))
    return info


def _cuda() -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"build": torch.version.cuda, "available": torch.cuda.is_available()}
    if out["available"]:
        out["cudnn"] = torch.backends.cudnn.version()
        out["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        out["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    return out


def pinned_packages() -> dict[str, str | None]:
    """The installed version of every package genlab's pyproject pins."""
    try:
        requires = importlib.metadata.requires("genlab") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    out = {}
    for requirement in requires:
        if "extra ==" in requirement:
            continue
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict[str, Any]:
    """What the numbers of a stage may depend on besides code, data and params."""
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": cpu_info(),
        "cuda": _cuda(),
        "packages": pinned_packages(),
    }


def compute_kind(env: dict[str, Any]) -> dict[str, Any]:
    """The parts of an environment that decide the float bits of CPU training and sampling: two
    environments with the same kind reproduce each other's outputs byte for byte."""
    cpu = env.get("cpu", {})
    return {"cpu": cpu.get("model"), "cpu_flags": cpu.get("flags"), "torch": env.get("torch"),
            "torch_cpu_capability": env.get("torch_cpu_capability"), "torch_threads": env.get("torch_threads"),
            "cuda_devices": env.get("cuda", {}).get("devices")}


def git_state(root: Path, outputs: set[str]) -> dict[str, Any]:
    """HEAD and the paths that differ from it, leaving out DVC's own files (dvc.lock and every
    stage output, which `dvc repro` rewrites while it runs)."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty_paths": []}
    status = _git(root, "status", "--porcelain", "--untracked-files=all") or ""
    dirty = []
    for line in status.splitlines():
        path = line[3:].split(" -> ")[-1].strip('"')
        if path == "dvc.lock" or Path(path).name == ".gitignore":  # DVC writes both for its outputs
            continue
        if any(path == o or path.startswith(o.rstrip("/") + "/") for o in outputs):
            continue
        dirty.append(path)
    return {"commit": commit.strip(), "dirty_paths": sorted(dirty)}


def stage_lineage(stage_name: str, root: Path | None = None) -> dict[str, Any]:
    """The dvc.lock entry DVC will write for `stage_name` (computed now, after the stage wrote its
    outputs), each directory output's files, the git state and the environment."""
    from dvc.repo import Repo
    from dvc.stage.serialize import to_single_stage_lockfile

    # The workspace the stage runs in, found from its working directory (DVC runs a stage in its
    # dvc.yaml's directory): not DVC_ROOT, which names the parent repo in `dvc exp run --queue/--temp`.
    root = Path(root or Repo.find_root(os.getcwd())).resolve()
    stage_name = os.environ.get("DVC_STAGE", stage_name)  # set by DVC for every stage command
    with Repo(str(root)) as repo:
        (stage,) = repo.stage.collect(stage_name)
        stage.save(run_cache=False)  # hashes deps, params and outs; stores nothing
        entry = to_single_stage_lockfile(stage)
        files = to_single_stage_lockfile(stage, with_files=True)["outs"]
    outputs = {out["path"] for out in entry.get("outs", [])} | locked_outputs(root)
    return {
        "stage": stage_name,
        "dvc_lock": _plain(entry),
        "out_files": _plain(files),
        "git": git_state(root, outputs),
        "dvc_exp": {"name": os.environ.get("DVC_EXP_NAME"), "baseline": os.environ.get("DVC_EXP_BASELINE_REV")},
        "code": loaded_code(root),
        "environment": environment(),
        "argv": [Path(sys.argv[0]).as_posix(), *sys.argv[1:]],
    }


def loaded_code(root: Path) -> dict[str, Any]:
    """Where the genlab modules this process runs came from, and which of them differ from the
    repository's `src/genlab` (whose hashes dvc.lock records): an installed copy of other code runs
    other code than the lock says."""
    import genlab

    from genlab.io import file_digest

    package = Path(genlab.__file__).resolve().parent
    differs = []
    for name, module in sorted(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not (name == "genlab" or name.startswith("genlab.")) or not path:
            continue
        rel = Path(path).resolve().relative_to(package)
        mine, repo_file = Path(path), root / "src" / "genlab" / rel
        if not repo_file.is_file() or file_digest(mine) != file_digest(repo_file):
            differs.append(f"src/genlab/{rel.as_posix()}")
    return {"package": str(package), "differs_from_repo": differs}


def locked_outputs(root: Path) -> set[str]:
    """Every output dvc.lock lists now: `dvc repro` writes each stage's entry as the stage ends.

    Parsed once per version of the file: a stage asks when its run is created and again when it
    records its lineage, and dvc.lock does not change in between."""
    path = root / "dvc.lock"
    try:
        stat = path.stat()
    except OSError:
        return set()
    return set(_locked_outputs(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=4)
def _locked_outputs(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    import yaml

    from genlab.io import load_yaml

    try:
        lock = load_yaml(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return frozenset()
    return frozenset(out["path"] for entry in (lock.get("stages") or {}).values() for out in entry.get("outs", []))


def _plain(value: Any) -> Any:
    """DVC's entries hold OrderedDicts and its own str types: make them plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value
