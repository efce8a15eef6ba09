"""`genlab server`: a team's MLflow tracking server on PostgreSQL, with artifacts served by it.

One directory holds everything (default ~/.local/share/genlab/server): `postgres/`, a PostgreSQL
cluster of its own (Debian's `postgresql` binaries, run as an unprivileged user: `postgres` when
started by root), `artifacts/`, where the server stores what runs log through it, and the logs.
The cluster listens on 127.0.0.1 only, with trust authentication for its one role: anyone who can
reach that port can write. The MLflow server binds to 127.0.0.1 by default; a team that opens it
to its network (`--host 0.0.0.0`) puts it behind its own authentication.

SQLite serialises writers; PostgreSQL lets `dvc queue start -j N` and several people log at once.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from genlab.errors import GenlabError
from genlab.tracking.store import experiment_page

ROLE = "genlab"
DATABASE = "mlflow"


class ServerError(GenlabError):
    """PostgreSQL or the MLflow server could not be started: says what to install or look at."""


def default_dir() -> Path:
    """~/.local/share/genlab/server; for root, /var/lib/genlab/server (root's home is closed to the
    unprivileged user that runs PostgreSQL)."""
    if os.geteuid() == 0:
        return Path("/var/lib/genlab/server")
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "genlab" / "server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin(name: str) -> str:
    """A PostgreSQL server binary: on PATH, or in Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise ServerError(f"PostgreSQL's {name} was not found: install it (`apt-get install postgresql`)")
    return found


@dataclass
class Postgres:
    """A PostgreSQL cluster in `directory`, started on 127.0.0.1:`port`."""

    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "postgres"

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    def _as_owner(self) -> list[str]:
        """Run PostgreSQL's tools as an unprivileged user: it refuses to run as root."""
        if os.geteuid() != 0:
            return []
        runuser = shutil.which("runuser")
        if not runuser:
            raise ServerError("running as root and `runuser` is missing: start the server as an ordinary user")
        return [runuser, "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self._as_owner(), *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ServerError(f"{Path(args[0]).name} failed ({proc.returncode}): {(proc.stdout + proc.stderr).strip()[-1500:]}")

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
            self.data.chmod(0o700)
            if subprocess.run([*self._as_owner(), "test", "-w", str(self.data)]).returncode != 0:
                raise ServerError(f"the postgres user cannot reach {self.data} (a parent directory is closed to it): "
                                  f"give --dir under a directory it can traverse, e.g. /var/lib/genlab/server")
        self._run(postgres_bin("initdb"), "-D", str(self.data), "-U", ROLE, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8")

    def start(self) -> None:
        log = self.data / "server.log"
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "-t", "60", "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}", "start")
        exists = subprocess.run([postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE,
                                 "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{DATABASE}'"],
                                capture_output=True, text=True)
        if exists.stdout.strip() != "1":
            self._run(postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE, DATABASE)

    def stop(self) -> None:
        subprocess.run([*self._as_owner(), postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                       capture_output=True)


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"the MLflow server exited with code {process.returncode}; see its log")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.5)
    raise ServerError(f"the MLflow server did not answer at {url}/health within {timeout:.0f} s")


@contextlib.contextmanager
def running_server(directory: Path, *, host: str = "127.0.0.1", port: int = 5000, pg_port: int | None = None,
                   workers: int = 2) -> Iterator[str]:
    """PostgreSQL and `mlflow server` started, yielding the tracking URI; both stopped on exit."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    pg = Postgres(directory, pg_port or free_port())
    pg.init()
    pg.start()
    artifacts = directory / "artifacts"
    artifacts.mkdir(exist_ok=True)
    log = open(directory / "mlflow-server.log", "ab")
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", pg.uri,
           "--artifacts-destination", str(artifacts), "--serve-artifacts", "--host", host, "--port", str(port),
           "--workers", str(workers)]
    # MLflow's job runner (huey consumer processes for its GenAI features) serves nothing genlab logs and
    # slows the server's start on a small machine; MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true in the environment
    # keeps it.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        wait_until_up(url, process)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()
        pg.stop()


def serve(directory: Path, *, host: str, port: int, pg_port: int | None, workers: int) -> int:
    """Run until interrupted (Ctrl-C or SIGTERM)."""
    stop = {"now": False}

    def _stop(*_):
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    with running_server(directory, host=host, port=port, pg_port=pg_port, workers=workers) as url:
        print(f"MLflow server on PostgreSQL: {url}  (store and artifacts in {directory})")
        print(f"point the pipeline at it:  export MLFLOW_TRACKING_URI={url}")
        print(f"runs in the browser:       {url}/{experiment_page()}")
        with contextlib.suppress(KeyboardInterrupt):
            while not stop["now"]:
                time.sleep(0.5)
    print("stopped the MLflow server and PostgreSQL")
    return 0
