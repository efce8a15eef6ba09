"""A clean checkout of the audited commit, with DVC's outputs from the cache or a remote.

`git worktree add --detach` at the commit (so nothing of the user's workspace leaks in), DVC pointed
at the auditing repository's cache and remotes, and the needed outputs checked out or pulled. Stages
re-run there with GENLAB_TRACKING=off (the audited run is read, never written) and with the commit's
own `src/` first on PYTHONPATH, so the code that runs is the code the commit holds.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from genlab.audit.locate import CannotAudit, git


class Worktree:
    def __init__(self, root: Path, commit: str):
        self.root = root
        self.commit = commit
        self._tmp = Path(tempfile.mkdtemp(prefix="genlab-audit-"))
        self.path = self._tmp / "tree"

    def __enter__(self) -> "Worktree":
        git(self.root, "worktree", "add", "--detach", "--force", str(self.path), self.commit)
        self._configure_dvc()
        return self

    def __exit__(self, *exc) -> None:
        git(self.root, "worktree", "remove", "--force", str(self.path), check=False)
        git(self.root, "worktree", "prune", check=False)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _configure_dvc(self) -> None:
        """The worktree shares the auditing repo's DVC cache and remotes (with absolute paths)."""
        from dvc.repo import Repo

        with Repo(str(self.root)) as source:
            cache_dir = source.cache.local_cache_dir
            remotes = {name: dict(options) for name, options in source.config["remote"].items()}
            default = source.config["core"].get("remote")
        with Repo(str(self.path)) as tree, tree.config.edit("local") as conf:
            conf["cache"]["dir"] = str(cache_dir)
            for name, options in remotes.items():
                conf["remote"][name] = {k: str(v) if k == "url" else v for k, v in options.items()}
            if default:
                conf["core"]["remote"] = default
        self.remotes = sorted(remotes)

    # -- DVC -----------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.path / "src"), env.get("PYTHONPATH")]))
        env["GENLAB_TRACKING"] = "off"
        env.pop("DVC_ROOT", None)
        return env

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=self.path, env=self.env(),
                              capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise CannotAudit(f"`dvc {' '.join(args)}` failed in the audit worktree:\n{_tail(proc)}")
        return proc

    def fetch(self, targets: list[str]) -> None:
        """Check the targets out of the cache; pull what the cache lacks from the remotes."""
        if self.dvc("checkout", *targets, check=False).returncode == 0:
            return
        if not self.remotes:
            raise CannotAudit(f"the commit's outputs ({', '.join(targets)}) are not all in the DVC cache and no "
                              f"DVC remote is configured: `dvc remote add -d ...` and `dvc pull`, or audit where "
                              f"they were made")
        proc = self.dvc("pull", *targets, check=False)
        if proc.returncode != 0:
            raise CannotAudit(f"the commit's outputs are in neither the DVC cache nor the remotes "
                              f"({', '.join(self.remotes)}); whoever made the run should `make push`:\n{_tail(proc)}")

    def status(self, targets: list[str]) -> dict[str, Any]:
        """`dvc status --json` of the stages: {} when deps and outs are as dvc.lock records them."""
        proc = self.dvc("status", "--json", *targets)
        return json.loads(proc.stdout or "{}")

    def repro(self, *stages: str) -> None:
        """Run the stages again, each alone, whatever the run cache holds."""
        self.dvc("repro", "--force", "--single-item", "--no-run-cache", "--no-commit", *stages)

    def lock(self) -> dict[str, Any]:
        from genlab.io import load_yaml

        return (load_yaml((self.path / "dvc.lock").read_text()) or {}).get("stages") or {}


def _tail(proc: subprocess.CompletedProcess, n: int = 3000) -> str:
    return (proc.stdout + proc.stderr).strip()[-n:]
