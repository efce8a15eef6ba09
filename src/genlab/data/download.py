"""Fetch a registered dataset's raw files into a directory, verified by md5.

Sources are tried in order: $GENLAB_DATA_MIRROR (a directory or an http(s) base URL), the
dataset's local directories, then its network mirrors. Whatever the source, `out_dir` ends up
holding exactly the decompressed files, byte-identical, so DVC hashes do not depend on it.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from genlab.errors import GenlabError
from genlab.data.sources import DATASETS, DatasetSource
from genlab.io import write_bytes_atomic

ENV_MIRROR = "GENLAB_DATA_MIRROR"

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16
_USER_AGENT = "genlab-data/1"


class DownloadError(GenlabError):
    """No source could provide a file with the expected checksum."""


class _SourceFailed(Exception):
    """One source could not provide one file; the message says why."""


def download_dataset(name: str, out_dir: Path, *,
                     mirrors: Sequence[str] | None = None,
                     local_dirs: Sequence[str] | None = None,
                     retries: int = 3,
                     backoff: float = 1.0,
                     timeout: float = 30) -> dict[str, str]:
    """Store every file of dataset `name` decompressed in `out_dir`; return role -> md5.

    `mirrors` / `local_dirs` override the registry's. `retries` is the number of extra
    attempts per URL after a network error, sleeping `backoff * 2**k` seconds before each.
    """
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; registered: {sorted(DATASETS)}")
    source: DatasetSource = DATASETS[name]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    locations = _locations(source, mirrors, local_dirs)

    md5s: dict[str, str] = {}
    for role, remote in source.files.items():
        target = out_dir / remote.name
        if target.is_file() and _md5(target.read_bytes()) == remote.md5:
            _log(f"{remote.name}: already present with the right md5")
            md5s[role] = remote.md5
            continue
        failures: list[str] = []
        for location in locations:
            try:
                origin, data = _fetch_verified(location, remote.name, remote.md5,
                                               retries=retries, backoff=backoff, timeout=timeout)
            except _SourceFailed as exc:
                failures.append(str(exc))
                continue
            write_bytes_atomic(target, data)
            _log(f"{remote.name}: from {origin}")
            md5s[role] = remote.md5
            break
        else:
            raise DownloadError(_failure_message(name, remote.name, failures))
    return md5s


def _locations(source: DatasetSource, mirrors: Sequence[str] | None,
               local_dirs: Sequence[str] | None) -> list[str]:
    env = os.environ.get(ENV_MIRROR, "").strip()
    locations = [env] if env else []
    locations += list(source.local_dirs if local_dirs is None else local_dirs)
    locations += list(source.mirrors if mirrors is None else mirrors)
    return locations


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _fetch_verified(location: str, filename: str, md5: str, *,
                    retries: int, backoff: float, timeout: float) -> tuple[str, bytes]:
    """Return (origin, decompressed bytes) from one location, or raise _SourceFailed."""
    if _is_url(location):
        url = f"{location.rstrip('/')}/{filename}.gz"
        candidates = [(url, lambda: _fetch_url(url, retries=retries, backoff=backoff, timeout=timeout))]
    else:
        directory = Path(location).expanduser()
        if not directory.is_dir():
            raise _SourceFailed(f"{directory}: directory does not exist")
        paths = [p for p in (directory / f"{filename}.gz", directory / filename) if p.is_file()]
        if not paths:
            raise _SourceFailed(f"{directory}: neither {filename}.gz nor {filename} found")
        candidates = [(str(p), p.read_bytes) for p in paths]

    # A directory may hold both forms; a bad one should not hide a good one.
    problems = []
    for origin, load in candidates:
        try:
            data = _decompress(load())
        except (OSError, EOFError, zlib.error, _SourceFailed) as exc:
            problems.append(f"{origin}: {exc}")
            continue
        digest = _md5(data)
        if digest == md5:
            return origin, data
        problems.append(f"{origin}: md5 mismatch (got {digest}, expected {md5})")
    raise _SourceFailed("; ".join(problems))


def _decompress(raw: bytes) -> bytes:
    # Detect gzip by content, not by name: mirrors and packages disagree on naming.
    return gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw


def _fetch_url(url: str, *, retries: int, backoff: float, timeout: float) -> bytes:
    """GET `url`, retrying transient network errors with exponential backoff."""
    for attempt in range(retries + 1):
        try:
            return _get(url, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code < 500:  # 404 and friends will not fix themselves
                raise _SourceFailed(f"HTTP {exc.code} {exc.reason}") from exc
            error: Exception = exc
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, OSError):  # e.g. unknown url type: not transient
                raise _SourceFailed(f"{exc.reason}") from exc
            error = exc
        except (OSError, http.client.HTTPException) as exc:  # resets, timeouts, IncompleteRead
            error = exc
        if attempt < retries:
            time.sleep(backoff * 2 ** attempt)
    raise _SourceFailed(f"network error after {retries + 1} attempts: {_describe(error)}")


def _get(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        chunks = []
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=url.rsplit("/", 1)[-1], file=sys.stderr, disable=None, leave=False) as bar:
            while chunk := response.read(_CHUNK):
                chunks.append(chunk)
                bar.update(len(chunk))
    data = b"".join(chunks)
    # http.client returns a short body silently when the peer closes early.
    if total is not None and len(data) != total:
        raise http.client.IncompleteRead(data, total - len(data))
    return data


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _log(message: str) -> None:
    print(f"[genlab.data] {message}", file=sys.stderr, flush=True)


def _failure_message(dataset: str, filename: str, failures: list[str]) -> str:
    tried = "\n".join(f"  - {f}" for f in failures) or "  (no sources configured)"
    return (f"could not obtain {filename} of dataset {dataset!r}; sources tried:\n{tried}\n"
            f"To fix: `apt-get install dataset-{dataset}` (installs the files into a local "
            f"directory searched first), or set {ENV_MIRROR} to a directory (or http(s) base URL) "
            f"holding {filename}.gz or {filename}.")
