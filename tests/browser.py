"""Headless Chromium (Debian's `chromium`, installed by .ci/run) for looking at web UIs as users do:
the page's DOM after its scripts ran and its requests settled, or a screenshot."""
from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from genlab.server import wait_until_up
from genlab.tracking.store import experiment_page  # noqa: F401  (re-exported for the tests)
from projects import BIN, stop_group


def chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             "--window-size=1600,1000", "--virtual-time-budget=30000"]
    return subprocess.run([chromium(), *flags, *args], capture_output=True, text=True, timeout=timeout)


def rendered_dom(url: str, timeout: float = 180) -> str:
    """The DOM once the page's scripts ran and their fetches settled (virtual time waits for them)."""
    proc = _run(["--dump-dom", url], timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def visible_text(dom: str) -> str:
    """The page's words: style and script bodies and tags dropped, whitespace collapsed."""
    dom = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", dom).split())


def screenshot(url: str, path: Path, timeout: float = 180) -> Path:
    proc = _run([f"--screenshot={path}", url], timeout)
    assert proc.returncode == 0 and path.exists(), proc.stderr[-2000:]
    return path


@contextlib.contextmanager
def mlflow_ui(repo: Path, port: int):
    """`mlflow ui` on the project's store, the way `make ui` starts it."""
    proc = subprocess.Popen([str(BIN / "mlflow"), "ui", "--backend-store-uri", f"sqlite:///{repo / 'mlflow.db'}",
                             "--default-artifact-root", str(repo / "mlartifacts"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc)
        yield url
    finally:
        stop_group(proc)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200, (url, response.status)
        return response.read()


if __name__ == "__main__":  # look at a page by hand: python tests/browser.py URL out.png
    screenshot(sys.argv[1], Path(sys.argv[2]))
