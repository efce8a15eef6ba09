"""Where the tracking store is, and whether it answers: no MLflow import here, so a stage checks in
a fraction of a second, before it loads torch or MLflow.

The default store is `sqlite:///<repo root>/mlflow.db` with artifacts in `<repo root>/mlartifacts`,
anchored at the repository root (DVC_ROOT for stages), never the current directory, so that
`dvc exp run --temp` (which runs in .dvc/tmp/exps/...) logs to the same store. Setting
MLFLOW_TRACKING_URI (e.g. a team's `mlflow server`) overrides both. GENLAB_TRACKING=off makes the
stages write their DVC outputs and log nothing (how `genlab audit` rebuilds a run without touching it).

MLflow's HTTP client retries a refused connection with exponential back-off for about four minutes
(7 retries, factor 2) and then ends in a traceback. A stage that cannot log should instead fail
before it trains, in seconds: `require_store` probes an `http(s)://` server's /health endpoint once,
with a short timeout. During training genlab bounds MLflow's retries to about 15 s
(`bound_http_retries`, unless the user set MLFLOW_HTTP_REQUEST_* themselves), so a server that goes
away stops the stage with `TrackingLost` instead of hanging; the last epoch's checkpoint is kept and
the re-run resumes in the same MLflow run (genlab.training.loop).
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from genlab.errors import GenlabError

PROBE_TIMEOUT_S = 5.0
# MLflow's defaults are 7 retries with back-off factor 2 (~4 min); these give up after ~15 s.
HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
WHAT_TO_DO = ("start it (`make server`, or `genlab server`), point MLFLOW_TRACKING_URI at a running one, "
              "or unset MLFLOW_TRACKING_URI to log to the project's own mlflow.db")


class TrackingUnavailable(GenlabError):
    """The tracking store cannot be reached before the stage starts its work."""


class TrackingLost(GenlabError):
    """The tracking store stopped answering while the stage was logging to it."""


def bound_http_retries() -> None:
    """Give up on an unanswering server after ~15 s rather than MLflow's ~4 min (user settings win)."""
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)


def is_http(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def check_store(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise TrackingUnavailable unless an http(s) tracking server answers its /health probe.

    Local stores (sqlite, file, a database URI) are opened by MLflow itself and fail fast already."""
    if not is_http(uri):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except urllib.error.HTTPError as err:
        problem = f"HTTP {err.code} from {url}: not an MLflow tracking server?"
    except (urllib.error.URLError, OSError) as err:
        problem = str(getattr(err, "reason", err))
    raise TrackingUnavailable(f"MLflow tracking server {uri} is not reachable ({problem}); {WHAT_TO_DO}")


def lost(uri: str, err: BaseException) -> TrackingLost:
    first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
    return TrackingLost(f"MLflow tracking store {uri} stopped answering ({type(err).__name__}: {first_line})")


def experiment_page(experiment_id: str | None = None) -> str:
    """The UI route of an experiment's runs table (or of the experiments list). MLflow 3 opens every
    experiment as a GenAI app (traces, token usage) unless the browser has chosen "Model training"
    once; `workflowType` in the route chooses it."""
    path = f"experiments/{experiment_id}" if experiment_id else "experiments"
    return f"#/{path}?workflowType=machine_learning"


def repo_root() -> Path:
    """The repository root: DVC_ROOT when set by DVC, else the nearest parent holding dvc.yaml."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for path in (here, *here.parents):
        if (path / "dvc.yaml").exists() or (path / ".git").exists():
            return path
    return here


def tracking_uri(root: Path | None = None) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root or repo_root()) / 'mlflow.db'}"


def require_store() -> None:
    """Fail in seconds, before any work, when the tracking server cannot be reached (tracking on)."""
    if tracking_enabled():
        check_store(tracking_uri())


def tracking_enabled() -> bool:
    return os.environ.get("GENLAB_TRACKING", "on").lower() not in ("off", "0", "false", "no")
