"""Is the tracking store there? Fail a stage in seconds when it is not, and say what to do.

MLflow's HTTP client retries a refused connection with exponential back-off for about four minutes
(7 retries, factor 2) and then ends in a traceback. A stage that cannot log should instead fail
before it trains, in seconds: `check_store` probes an `http(s)://` server's /health endpoint once,
with a short timeout, before any torch work. During training genlab bounds MLflow's retries to about
15 s (`bound_http_retries`, unless the user set MLFLOW_HTTP_REQUEST_* themselves), so a server that
goes away stops the stage with `TrackingLost` instead of hanging; the last epoch's checkpoint is kept
and the re-run resumes in the same MLflow run (genlab.training.loop).
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
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
