"""Fetch a registered dataset's raw files into a directory, each verified by its checksum.

Sources are tried per file, in order: the `source` argument (params `datasets.<name>.source`),
$GENLAB_DATA_MIRROR (each a directory or an http(s) base URL), the dataset's local directories,
its mirrors (`<base URL>/<remote name>`), the file's own URLs, then its Google Drive id. Whatever
the source, a stored file's bytes have the expected digest (content scope: stored decompressed;
file scope: stored as published), so DVC hashes never depend on where the data came from.

Every file is first completed and verified in the download cache (`download_cache_dir()`), outside
the DVC output, because DVC deletes a stage's outputs before re-running it: a partial download
(`<algorithm>-<checksum>.part`) resumes with an HTTP Range request, and a verified file
(`<algorithm>-<checksum>`) is reused by later runs without the network. `out_dir` is touched only
once every file is in the cache; each file is hard-linked (or copied) to a temp name there and
renamed, so nothing partial or unverified ever appears under a final name.

Files without a published checksum (`RemoteFile.checksum` None) are trusted on first use: the
first complete download (a gzip or zip read through to its end, so a cut-short transfer is never
recorded) is stored as `sha256-<digest>` in the cache and its digest recorded in
`recorded/<dataset>/<name>.json` there; every later run, whatever the source, must produce those
bytes, and a download that differs is refused with both digests and how to accept it. The
dataset's output directory then also holds `SHA256SUMS` (`sha256sum -c` format) naming the
recorded digest of each such file, which pack checks the raw files against.
"""
from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import http.client
import http.cookiejar
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Mapping, Sequence, TypeVar
from urllib.parse import urlencode, urljoin

from tqdm import tqdm

from genlab.schema import ParamsError
from genlab.data.sources import RECORDED_SUMS, DatasetSource, RemoteFile, UnknownDatasetError, dataset_source
from genlab.errors import GenlabError
from genlab.io import atomic_path, cache_dir, file_digest, write_bytes_atomic, write_json_atomic

ENV_MIRROR = "GENLAB_DATA_MIRROR"
GDRIVE_URL = "https://drive.google.com/uc"  # tests point it at a local server
GDRIVE_QUOTA_TEXT = "Too many users have viewed or downloaded this file recently"

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_USER_AGENT = "genlab-data/2"
_MAX_PAGE = 1 << 20     # an HTML answer larger than this is not one of Drive's confirm pages
_GDRIVE_PAGES = 3       # confirm pages followed before giving up
_HEX_DIGITS = {"md5": 32, "sha256": 64}
_CHECKSUM = re.compile(r"(md5|sha256):([0-9a-fA-F]+)")
_ZIP_MAGIC = b"PK\x03\x04"

T = TypeVar("T")


class DownloadError(GenlabError):
    """No source could provide a file with the expected checksum (or the dataset is unknown)."""


class _SourceFailed(Exception):
    """One source could not provide one file; the message says why."""


class _BadContent(_SourceFailed):
    """A complete download whose bytes do not verify (checksum mismatch, broken gzip)."""


class _Transient(Exception):
    """A failure worth retrying from the bytes already on disk: reset, truncated body, timeout, 5xx."""


class _RangeNotSatisfiable(Exception):
    """HTTP 416 to `Range: bytes=<k>-`: the part may already hold the whole file."""


class _HtmlAnswer(Exception):
    """An HTML page where a file was expected (Google Drive's confirm and quota pages)."""

    def __init__(self, url: str, text: str):
        super().__init__(url)
        self.url = url
        self.text = text


@dataclass(frozen=True)
class _Failure:
    """One file no source could provide: why, per source; `record` for files checked against their first download."""

    role: str
    remote: RemoteFile
    reasons: list[str]
    record: Path | None


class _AllFailed(Exception):
    """Every source failed for one file; `reasons` holds one "<source>: <why>" line per source."""

    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass
class _Net:
    """How one file's HTTP requests are made: retry policy, and one cookie jar across redirects."""

    retries: int
    backoff: float
    timeout: float
    cookies: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))


# --------------------------------------------------------------------------- public API
def download_dataset(name: str, out_dir: Path, *,
                     source: str | None = None,
                     checksums: Mapping[str, str] | None = None,
                     mirrors: Sequence[str] | None = None,
                     local_dirs: Sequence[str] | None = None,
                     retries: int = 3,
                     backoff: float = 1.0,
                     timeout: float = 30) -> dict[str, dict]:
    """Store every file of dataset `name` in `out_dir` under its name; return role -> checksum record.

    `source` (a directory or http(s) base URL) is tried first; `checksums` (role -> "md5:<hex>" or
    "sha256:<hex>") replaces the registry's checksums; `mirrors` / `local_dirs` replace the
    registry's. `retries` is the number of extra attempts per URL after a transient network error,
    sleeping `backoff * 2**attempt` seconds before each. Raises DownloadError, naming every source
    tried and why it failed, before anything is written to `out_dir`.
    """
    dataset = _dataset(name)
    files = _with_overrides(dataset, checksums)
    _log(f"{name}: {dataset.licence}")
    _log(f"{name}: homepage {dataset.homepage}")
    locations = _locations(dataset, source, mirrors, local_dirs)
    out_dir = Path(out_dir)

    ready: dict[Path, Path] = {}  # target in out_dir -> verified cache entry
    failures: list[_Failure] = []
    unpublished = {role: _record_path(name, remote) for role, remote in files.items() if not remote.published}
    for role, remote in files.items():
        record = unpublished.get(role)
        if record is not None:
            remote = files[role] = _with_record(remote, record)
        target = out_dir / remote.name
        if remote.published and _verifies(target, remote):
            _log(f"{remote.name}: already present in {out_dir} with the right {remote.algorithm}")
            continue
        net = _Net(retries, backoff, timeout)
        try:
            if remote.published:
                ready[target] = _acquire(remote, locations, net, name)
            else:
                ready[target], files[role] = _acquire_first(remote, record, locations, net, name)
        except _AllFailed as exc:
            failures.append(_Failure(role, remote, exc.reasons, record))
    if failures:
        raise DownloadError(_failure_message(dataset, failures))
    for target, entry in ready.items():
        _place(entry, target)
    if unpublished:
        sums = "".join(f"{files[role].checksum}  {files[role].name}\n" for role in sorted(unpublished))
        write_bytes_atomic(out_dir / RECORDED_SUMS, sums.encode())
    return {role: {"name": f.name, "algorithm": f.algorithm, "scope": f.scope, "checksum": f.checksum,
                   **({"published": False} if role in unpublished else {})}
            for role, f in files.items()}


def download_cache_dir() -> Path:
    """Partial and verified downloads: `downloads/` under genlab's cache (genlab.io.cache_dir)."""
    return cache_dir() / "downloads"


# --------------------------------------------------------------------------- what to fetch, from where
def _dataset(name: str) -> DatasetSource:
    """The registry entry; an unknown name is a DownloadError listing the registered ones."""
    try:
        return dataset_source(name)
    except UnknownDatasetError as exc:
        raise DownloadError(str(exc)) from None


def _with_overrides(dataset: DatasetSource, checksums: Mapping[str, str] | None) -> dict[str, RemoteFile]:
    """The registry's files with `checksums` applied; warns where an override changes a checksum.

    Overrides exist for re-packaged archives and miniature test data: the file is then not the
    published one, which the warning says in the stage's log.
    """
    files = dict(dataset.files)
    for role, value in (checksums or {}).items():
        key = f"datasets.{dataset.name}.checksums.{role}"
        if role not in files:
            raise ParamsError(f"{key}: unknown file role; allowed: {', '.join(files)}")
        algorithm, checksum = _parse_checksum(key, value)
        remote = files[role]
        if not remote.published:
            _log(f"{key} pins {remote.name}, which has no published checksum, to {algorithm}:{checksum}")
            files[role] = replace(remote, algorithm=algorithm, checksum=checksum)
        elif (algorithm, checksum) != (remote.algorithm, remote.checksum):
            _log(f"warning: {key} replaces the registry's checksum of {remote.name}: "
                 f"{remote.algorithm}:{remote.checksum} -> {algorithm}:{checksum} (not the published file)")
            files[role] = replace(remote, algorithm=algorithm, checksum=checksum)
    return files


def _parse_checksum(key: str, value: object) -> tuple[str, str]:
    match = _CHECKSUM.fullmatch(value) if isinstance(value, str) else None
    if match is None or len(match[2]) != _HEX_DIGITS[match[1]]:
        raise ParamsError(f"{key}: got {value!r}; expected 'md5:' and 32 hex digits, "
                          f"or 'sha256:' and 64 hex digits")
    return match[1], match[2].lower()


def _locations(dataset: DatasetSource, source: str | None, mirrors: Sequence[str] | None,
               local_dirs: Sequence[str] | None) -> list[str]:
    """Directories and base URLs in the order they are tried (each once). $GENLAB_DATA_MIRROR may
    hold several datasets, one folder each (`<mirror>/mnist/`, ...), or one dataset's files directly:
    MNIST's and Fashion-MNIST's files share their names, so a team mirror needs the folders."""
    env = os.environ.get(ENV_MIRROR, "").strip()
    shared = [f"{env.rstrip('/')}/{dataset.name}", env] if env else []
    ordered = [source or "", *shared,
               *(dataset.local_dirs if local_dirs is None else local_dirs),
               *(dataset.mirrors if mirrors is None else mirrors)]
    return list(dict.fromkeys(loc for loc in ordered if loc))


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _candidates(remote: RemoteFile, locations: list[str], net: _Net,
                dataset: str) -> Iterator[tuple[str, Callable[[Path], str]]]:
    """(label, fetch) per source; fetch(cache entry) fills the entry and returns the exact origin."""
    for location in locations:
        if _is_url(location):
            url = f"{location.rstrip('/')}/{remote.remote}"
            yield url, partial(_from_url, url, remote, net=net)
        else:
            yield location, partial(_from_directory, Path(location).expanduser(), remote)
    for url in remote.urls:
        yield url, partial(_from_url, url, remote, net=net)
    if remote.gdrive_id:
        yield f"Google Drive id {remote.gdrive_id}", partial(_from_gdrive, remote, net=net, dataset=dataset)


# --------------------------------------------------------------------------- the cache
def _acquire(remote: RemoteFile, locations: list[str], net: _Net, dataset: str) -> Path:
    """The verified cache entry of `remote`, fetched from the first source that provides it."""
    entry = download_cache_dir() / f"{remote.algorithm}-{remote.checksum}"
    with _locked(entry):
        if _verifies(entry, remote):
            _log(f"{remote.name}: from the download cache {entry}")
            return entry
        if entry.exists():
            _log(f"{remote.name}: discarding {entry}, which no longer verifies")
            entry.unlink()
        reasons = []
        for label, fetch in _candidates(remote, locations, net, dataset):
            try:
                origin = fetch(entry)
            except _SourceFailed as exc:
                reasons.append(f"{label}: {exc}")
                continue
            _log(f"{remote.name}: from {origin}")
            return entry
        raise _AllFailed(reasons)


def _record_path(dataset: str, remote: RemoteFile) -> Path:
    """Where the digest of the first download of a file without a published checksum is kept."""
    return download_cache_dir() / "recorded" / dataset / f"{remote.name}.json"


def _read_record(record: Path) -> str | None:
    """The sha256 recorded at `record`, or None when there is none yet; a damaged record is an error."""
    if not record.is_file():
        return None
    try:
        digest = json.loads(record.read_text())["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DownloadError(f"{record}: damaged record of a first download ({exc}); delete it to record "
                            f"the next download afresh") from exc
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise DownloadError(f"{record}: {digest!r} is not a sha256 digest; delete it to record the next "
                            f"download afresh")
    return digest


def _with_record(remote: RemoteFile, record: Path) -> RemoteFile:
    """`remote` with the digest of its first download as its checksum, or unchanged if none is recorded."""
    digest = _read_record(record)
    return remote if digest is None else replace(remote, checksum=digest)


def _acquire_first(remote: RemoteFile, record: Path, locations: list[str], net: _Net,
                   dataset: str) -> tuple[Path, RemoteFile]:
    """First download of a file without a published checksum: (cache entry, `remote` with its digest).

    The first source giving a complete file wins; its sha256 names the cache entry and is recorded.
    A part left by an earlier run is discarded, not resumed: nothing could verify the join.
    """
    staging = download_cache_dir() / f"first-{dataset}-{remote.name}"
    with _locked(staging):
        if (digest := _read_record(record)) is not None:  # another process recorded it meanwhile
            pinned = replace(remote, checksum=digest)
            return _acquire(pinned, locations, net, dataset), pinned
        staging.with_name(f"{staging.name}.part").unlink(missing_ok=True)
        reasons = []
        for label, fetch in _candidates(remote, locations, net, dataset):
            try:
                origin = fetch(staging)
                _check_complete(staging)
            except _SourceFailed as exc:
                staging.unlink(missing_ok=True)
                reasons.append(f"{label}: {exc}")
                continue
            digest = file_digest(staging, "sha256")
            entry = download_cache_dir() / f"sha256-{digest}"
            os.replace(staging, entry)
            write_json_atomic(record, {"name": remote.name, "sha256": digest, "origin": origin})
            _log(f"{remote.name}: from {origin}; no published checksum, so its sha256 {digest} is recorded "
                 f"in {record} and later downloads must match it")
            return entry, replace(remote, checksum=digest)
        raise _AllFailed(reasons)


def _check_complete(path: Path) -> None:
    """Read a gzip to its end (CRC and length trailer) or test every member of a zip; else nothing to check."""
    with path.open("rb") as f:
        magic = f.read(len(_ZIP_MAGIC))
    try:
        if magic.startswith(_GZIP_MAGIC):
            with gzip.open(path, "rb") as stream:
                while stream.read(_CHUNK):
                    pass
        elif magic == _ZIP_MAGIC:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad!r} fails its CRC")
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise _BadContent(f"incomplete or damaged download ({type(exc).__name__}: {exc})") from exc


@contextlib.contextmanager
def _locked(entry: Path) -> Iterator[None]:
    """Serialise processes fetching the same file (parallel `dvc exp run` jobs) on its one part file."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with entry.with_name(f"{entry.name}.lock").open("wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _verifies(path: Path, remote: RemoteFile) -> bool:
    """Whether `path` holds the stored form of `remote` (whose plain digest is the checksum in both scopes)."""
    return path.is_file() and file_digest(path, remote.algorithm) == remote.checksum


def _check(got: str, remote: RemoteFile) -> None:
    if remote.published and got != remote.checksum:
        of = " of the decompressed content" if remote.scope == "content" else ""
        raise _BadContent(f"{remote.algorithm} mismatch{of}: expected {remote.checksum}, got {got}")


def _copy_verified(stream: BinaryIO, remote: RemoteFile, entry: Path) -> None:
    """Copy `stream` to `entry` while hashing it; the entry appears only if the digest matches."""
    digest = hashlib.new(remote.algorithm)
    try:
        with atomic_path(entry) as tmp:
            with tmp.open("wb") as out:
                for chunk in iter(partial(stream.read, _CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
            _check(digest.hexdigest(), remote)
            tmp.chmod(0o644)  # the temp file is private; the cache holds plain shared files
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _BadContent(f"not a valid gzip file ({exc})") from exc


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _place(entry: Path, target: Path) -> None:
    """Hard-link the verified cache entry to `target` (no second copy), else copy it; atomically."""
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(entry, tmp)
        except OSError:  # another filesystem (EXDEV), or one without hard links
            shutil.copyfile(entry, tmp)


# --------------------------------------------------------------------------- local directories
def _from_directory(directory: Path, remote: RemoteFile, entry: Path) -> str:
    """Verify `<remote>` (or, for content scope, the plain `<name>`) from a directory into the cache."""
    if not directory.is_dir():
        raise _SourceFailed("no such directory")
    names = list(dict.fromkeys((remote.remote, remote.name)))
    paths = [directory / n for n in names if (directory / n).is_file()]
    if not paths:
        raise _SourceFailed(f"directory {directory} has no {' or '.join(names)}")
    problems = []
    for path in paths:  # a directory may hold both forms; a bad one must not hide a good one
        try:
            with _stored_form(path, remote) as stream:
                _copy_verified(stream, remote, entry)
            return str(path)
        except _SourceFailed as exc:
            problems.append(f"{path.name}: {exc}")
    raise _SourceFailed("; ".join(problems))


def _stored_form(path: Path, remote: RemoteFile) -> BinaryIO:
    """The bytes the checksum is of: decompressed for content scope when gzipped (by magic, not
    by name: mirrors and packages disagree on naming), else the bytes as they are."""
    if remote.scope == "content" and _is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


# --------------------------------------------------------------------------- HTTP
def _from_url(url: str, remote: RemoteFile, entry: Path, *, net: _Net, pages: bool = False) -> str:
    """Download `url` into the cache, resuming the part on disk; return `url`.

    A part resumed from an earlier run may hold another source's bytes (content-scope gzip files
    differ between mirrors) or a since-changed file: when it does not verify, the whole file is
    downloaded once more from this source before the source is declared bad.
    """
    part = entry.with_name(f"{entry.name}.part")
    resumed = part.is_file() and part.stat().st_size > 0
    try:
        _download_verified(url, part, remote, entry, net, pages)
    except _BadContent as exc:
        if not resumed:
            raise
        _log(f"{url}: the resumed download does not verify ({exc}); downloading the whole file again")
        _download_verified(url, part, remote, entry, net, pages)
    return url


def _download_verified(url: str, part: Path, remote: RemoteFile, entry: Path, net: _Net, pages: bool) -> None:
    try:
        digest = _retrying(url, net, partial(_get_into, url, part, remote.algorithm, net, pages))
    except _RangeNotSatisfiable:
        digest = file_digest(part, remote.algorithm)  # perhaps complete already
    _finish(part, digest, remote, entry)


def _finish(part: Path, digest: str, remote: RemoteFile, entry: Path) -> None:
    """Move a complete download to its cache entry if it verifies; else discard it."""
    try:
        if remote.scope == "content" and _is_gzip(part):
            with gzip.open(part, "rb") as stream:
                _copy_verified(stream, remote, entry)  # type: ignore[arg-type]
            part.unlink()
        else:
            _check(digest, remote)
            os.replace(part, entry)
    except _SourceFailed:
        part.unlink(missing_ok=True)
        raise


def _retrying(url: str, net: _Net, attempt: Callable[[], T]) -> T:
    """Run `attempt`, retrying transient failures with exponential backoff."""
    for number in range(net.retries + 1):
        try:
            return attempt()
        except _Transient as exc:
            error = exc
        if number < net.retries:
            delay = net.backoff * 2 ** number
            _log(f"{url}: {error}; retrying in {delay:g} s")
            time.sleep(delay)
    raise _SourceFailed(f"{error} (after {net.retries + 1} attempts)")


def _get_into(url: str, part: Path, algorithm: str, net: _Net, pages: bool) -> str:
    """One GET of `url` appended to `part` (from zero if the server ignores Range); the part's digest."""
    offset = part.stat().st_size if part.is_file() else 0
    with _open(url, offset, net) as response:
        if pages and response.headers.get_content_type() == "text/html":
            raise _HtmlAnswer(response.geturl(), _read(response, _MAX_PAGE).decode("utf-8", "replace"))
        start, total = _body_range(response, offset)
        if offset and not start:
            _log(f"{url}: the server ignored Range; downloading from the start")
        digest = hashlib.new(algorithm)
        if start:  # go on from the part already on disk
            with part.open("rb") as f:
                digest = hashlib.file_digest(f, algorithm)
        with part.open("ab" if start else "wb") as out, _progress(url, total, start) as bar:
            size = start
            while chunk := _read(response, _CHUNK):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
                size += len(chunk)
    if total is not None and size < total:  # http.client returns a short body silently
        raise _Transient(f"connection closed after {size} of {total} bytes")
    return digest.hexdigest()


def _open(url: str, offset: int, net: _Net) -> http.client.HTTPResponse:
    """GET `url` from byte `offset`, sorting failures into transient, final and 416."""
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return net.opener.open(urllib.request.Request(url, headers=headers), timeout=net.timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            raise _RangeNotSatisfiable() from exc
        message = f"HTTP {exc.code} {exc.reason}"
        if exc.code >= 500:
            raise _Transient(message) from exc
        raise _SourceFailed(message) from exc  # 404 and friends will not fix themselves
    except urllib.error.URLError as exc:
        # Refused, unknown host, no route: retrying will not bring the network back, and with
        # several mirrors per file the retries would add up to minutes.
        raise _SourceFailed(f"cannot connect ({exc.reason}); not retried") from exc
    except (OSError, http.client.HTTPException) as exc:  # closed before the status line, timeout
        raise _Transient(_describe(exc)) from exc


def _body_range(response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """(first byte the body holds, total size of the file or None) of a 200 or 206 answer."""
    length = response.headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None
    if response.status != 206:
        return 0, size
    content_range = response.headers.get("Content-Range", "")
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", content_range.strip())
    if match is None or int(match[1]) != offset:
        raise _SourceFailed(f"answered Range bytes={offset}- with Content-Range {content_range!r}")
    if match[2] != "*":
        return offset, int(match[2])
    return offset, None if size is None else offset + size


def _read(response: http.client.HTTPResponse, size: int) -> bytes:
    """Read from the body; a failure mid-body is transient (the retry resumes after what was written)."""
    try:
        return response.read(size)
    except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
        raise _Transient(_describe(exc)) from exc


def _progress(url: str, total: int | None, initial: int) -> tqdm:
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=url.rsplit("/", 1)[-1][:40], file=sys.stderr, disable=None, leave=False)


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


# --------------------------------------------------------------------------- Google Drive
def _from_gdrive(remote: RemoteFile, entry: Path, *, net: _Net, dataset: str) -> str:
    """Follow Drive's confirm pages (cookie token, or the download form) to the file itself."""
    url = f"{GDRIVE_URL}?{urlencode({'export': 'download', 'id': remote.gdrive_id})}"
    for _ in range(_GDRIVE_PAGES):
        try:
            return _from_url(url, remote, entry, net=net, pages=True)
        except _HtmlAnswer as page:
            url = _gdrive_next_url(page, net.cookies, remote, dataset)
    raise _SourceFailed(f"still a confirm page after {_GDRIVE_PAGES} confirmations; "
                        + _by_hand(remote, dataset))


def _gdrive_next_url(page: _HtmlAnswer, cookies: http.cookiejar.CookieJar, remote: RemoteFile,
                     dataset: str) -> str:
    """The URL that confirms the download, from Drive's form or its download_warning cookie."""
    if GDRIVE_QUOTA_TEXT in page.text:
        raise _SourceFailed(f"Google Drive's quota page ('{GDRIVE_QUOTA_TEXT}'); " + _by_hand(remote, dataset))
    form = _DownloadForm()
    form.feed(page.text)
    form.close()
    if form.action is not None:
        return f"{urljoin(page.url, form.action)}?{urlencode(form.inputs)}"
    token = next((c.value for c in cookies if c.name.startswith("download_warning")), None)
    if token and f"confirm={token}" not in page.url:
        return f"{page.url}&{urlencode({'confirm': token})}"
    raise _SourceFailed("Google Drive answered with an HTML page that is neither the file nor a confirm "
                        "page; " + _by_hand(remote, dataset))


def _by_hand(remote: RemoteFile, dataset: str) -> str:
    return (f"download {remote.remote} by hand from https://drive.google.com/uc?id={remote.gdrive_id} "
            f"and point {ENV_MIRROR} (or params datasets.{dataset}.source) at a directory holding it")


class _DownloadForm(HTMLParser):
    """The action and hidden inputs of Drive's `<form id="download-form">` (its can't-scan warning)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.inputs: dict[str, str] = {}
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self._inside = attributes.get("id") == "download-form"
            if self._inside:
                self.action = attributes.get("action") or ""
        elif tag == "input" and self._inside and attributes.get("type") == "hidden" and attributes.get("name"):
            self.inputs[attributes["name"]] = attributes.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


# --------------------------------------------------------------------------- messages
def _log(message: str) -> None:
    print(f"[genlab.data] {message}", file=sys.stderr, flush=True)


def _failure_message(source: DatasetSource, failures: list[_Failure]) -> str:
    dataset = source.name
    lines = [f"could not obtain {len(failures)} file(s) of dataset {dataset!r}; nothing was written "
             f"to the output directory"]
    for failure in failures:
        remote = failure.remote
        of = " of the decompressed content" if remote.scope == "content" else ""
        if failure.record is None:
            expected = f"{remote.algorithm}{of} {remote.checksum}"
        elif remote.published:
            expected = f"no published checksum; sha256 {remote.checksum} recorded at its first download"
        else:
            expected = "no published checksum"
        lines.append(f"{remote.name} ({expected}); sources tried:")
        lines += [f"  - {reason}" for reason in failure.reasons] or ["  (no sources configured)"]
        if failure.record is not None and remote.published:
            lines.append(f"  If the publisher has changed {remote.name}, accept the new file by deleting "
                         f"{failure.record} (or pin it with params datasets.{dataset}.download.checksums."
                         f"{failure.role}: 'sha256:<hex>').")
    wanted = ", ".join(failure.remote.remote for failure in failures)
    fix = (f"To fix: set {ENV_MIRROR} (or params datasets.{dataset}.source) to a directory or "
           f"http(s) base URL holding {wanted}")
    if source.apt_package:
        fix += f", or `apt-get install {source.apt_package}` (searched first)"
    return "\n".join([*lines, fix + "."])
