"""Read tar and zip archives member by member, in memory, trusting neither names nor headers.

The dataset archives (CIFAR-10, LFW, CelebA) are read straight into memory: nothing is ever
extracted, so tarfile's extraction filters do not apply, and the checks they would make are made
here on the TarInfo / ZipInfo headers, before a member's bytes are read:
- names: absolute paths, drive letters, `..` components and duplicate names are refused;
- types: only regular files are read (directories are skipped); symlinks, hard links, devices,
  FIFOs, sparse files and anything else are refused;
- sizes: a declared size over `max_member_bytes`, or declared sizes adding up to more than
  `max_total_bytes`, are refused before anything is decompressed (decompression bombs), and a
  member whose bytes do not match its declared size is refused too.
A truncated or corrupt archive gives one `CorruptArchiveError` that says to fetch it again.
"""
from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

from genlab.errors import GenlabError

MiB = 1 << 20
DEFAULT_MAX_MEMBER_BYTES = 64 * MiB  # a CIFAR-10 batch is 30 MiB, a dataset image well under 1 MiB
DEFAULT_MAX_TOTAL_BYTES = 4096 * MiB  # callers pass about 2x the dataset's known size

# Errors the stdlib raises for truncated or damaged archives, whatever the compression.
_CORRUPT_ERRORS = (tarfile.TarError, EOFError, zlib.error, zipfile.BadZipFile, lzma.LZMAError,
                   NotImplementedError, OSError)
_DRIVE = re.compile(r"[A-Za-z]:")
_SEPARATORS = re.compile(r"[/\\]")
_ZIP_MAGIC = b"PK\x03\x04"
_DECOMPRESSORS: tuple[tuple[bytes, Callable[[Path], IO[bytes]]], ...] = (
    (b"\x1f\x8b", lambda p: gzip.open(p, "rb")),
    (b"BZh", lambda p: bz2.open(p, "rb")),
    (b"\xfd7zXZ\x00", lambda p: lzma.open(p, "rb")),
)


class ArchiveError(GenlabError):
    """A dataset archive that cannot be read as it is."""


class UnsafeArchiveError(ArchiveError):
    """A member that could point outside the archive, alias another file or exhaust memory: refused."""


class CorruptArchiveError(ArchiveError):
    """A truncated or damaged archive: the remedy is to fetch it again."""


def iter_members(path: str | Path, *, max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
                 max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES) -> Iterator[tuple[str, bytes]]:
    """Yield (normalised name, bytes) of every regular file of a zip or a tar (any compression).

    Zip is recognised by its magic bytes, not by the file's name; anything else is read as a tar.
    """
    path = _existing(path)
    with path.open("rb") as f:
        is_zip = f.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    reader = iter_zip if is_zip else iter_tar
    yield from reader(path, max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes)


def iter_tar(path: str | Path, *, max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
             max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES) -> Iterator[tuple[str, bytes]]:
    """Yield (normalised name, bytes) of a tar's regular files, in archive order, streaming.

    Streaming (`r|`) reads each member once, in order, so a .tar.gz is decompressed exactly once.
    The decompressed stream is read to its end afterwards, so gzip's CRC trailer is verified too.
    """
    path = _existing(path)
    budget = _Budget(path, max_member_bytes, max_total_bytes)
    with _corrupt_guard(path), _decompressed(path) as stream:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                if info.isdir():
                    normalise_member_name(path, info.name)
                    continue
                _check_tar_type(path, info)
                name = budget.admit(info.name, info.size)
                member = tar.extractfile(info)
                assert member is not None  # a regular file always has a file object
                yield name, _read_exactly(path, name, member, info.size)
        while stream.read(MiB):
            pass


def iter_zip(path: str | Path, *, max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
             max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES) -> Iterator[tuple[str, bytes]]:
    """Yield (normalised name, bytes) of a zip's regular files, in central-directory order."""
    with SafeZip(path, max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes) as archive:
        for name in archive.names:
            yield name, archive.read(name)


class SafeZip:
    """A zip whose every entry was checked on opening; members are then read by name, in any order.

    All checks run on the central directory before any member is decompressed, so a zip bomb is
    refused up front, whatever order the caller reads in.
    """

    def __init__(self, path: str | Path, *, max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
                 max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES) -> None:
        self.path = _existing(path)
        with _corrupt_guard(self.path):
            self._zip = zipfile.ZipFile(self.path)
        try:
            self._infos = self._checked_infos(_Budget(self.path, max_member_bytes, max_total_bytes))
        except BaseException:
            self._zip.close()
            raise

    @property
    def names(self) -> list[str]:
        """Normalised names of the regular files, in central-directory order."""
        return list(self._infos)

    def read(self, name: str) -> bytes:
        """The bytes of member `name` (a name from `names`), checked against the declared size and CRC."""
        info = self._infos[name]
        with _corrupt_guard(self.path, name), self._zip.open(info) as member:
            return _read_exactly(self.path, name, member, info.file_size)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _checked_infos(self, budget: _Budget) -> dict[str, zipfile.ZipInfo]:
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            if info.is_dir():
                normalise_member_name(self.path, info.filename)
                continue
            _check_zip_entry(self.path, info)
            infos[budget.admit(info.filename, info.file_size)] = info
        return infos


def read_compressed(path: str | Path, *, max_bytes: int) -> bytes:
    """The whole decompressed content of a gzip, bzip2 or xz file (told by its magic bytes; any other
    file is read as it is), refusing more than `max_bytes`; a damaged file is a CorruptArchiveError."""
    path = _existing(path)
    with _corrupt_guard(path), _decompressed(path) as stream:
        data = stream.read(max_bytes + 1)  # reaching the end checks gzip's CRC and length trailer
    if len(data) > max_bytes:
        raise UnsafeArchiveError(f"{path}: decompresses to more than the limit of {max_bytes} bytes "
                                 f"(decompression bomb?)")
    return data


def normalise_member_name(archive: Path, name: str) -> str:
    """`name` as a relative POSIX path without empty or `.` parts; refuse what could point elsewhere.

    Backslashes count as separators, since Windows tools write them and extractors honour them.
    """
    if not name or "\0" in name:
        raise _unsafe(archive, name, "empty name or NUL byte")
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise _unsafe(archive, name, "absolute path")
    parts = [part for part in _SEPARATORS.split(name) if part not in ("", ".")]
    if ".." in parts:
        raise _unsafe(archive, name, "`..` component (path traversal)")
    if not parts:
        raise _unsafe(archive, name, "name without a path")
    return "/".join(parts)


def corrupt_message(archive: Path, detail: str, member: str | None = None) -> str:
    """The one-line error for a damaged archive; the raw files live in data/raw/<dataset>/."""
    where = f"{archive}" + (f", member {member!r}" if member else "")
    return (f"{where}: corrupt or truncated archive ({detail}); delete {archive} and re-run the "
            f"download stage (`dvc repro download@{archive.parent.name}`)")


@dataclass
class _Budget:
    """Declared sizes and names seen so far in one archive, against its limits."""

    archive: Path
    max_member_bytes: int
    max_total_bytes: int
    total: int = 0
    names: set[str] = field(default_factory=set)

    def admit(self, raw_name: str, declared: int) -> str:
        """Normalised name of a member about to be read, or UnsafeArchiveError."""
        name = normalise_member_name(self.archive, raw_name)
        if name in self.names:
            raise _unsafe(self.archive, raw_name, "duplicate member name")
        if declared > self.max_member_bytes:
            raise _unsafe(self.archive, raw_name, f"declared size {declared} bytes exceeds the per-member "
                                                  f"limit of {self.max_member_bytes} (decompression bomb?)")
        self.total += declared
        if self.total > self.max_total_bytes:
            raise _unsafe(self.archive, raw_name, f"declared sizes add up to more than the archive limit of "
                                                  f"{self.max_total_bytes} bytes (decompression bomb?)")
        self.names.add(name)
        return name


def _check_tar_type(archive: Path, info: tarfile.TarInfo) -> None:
    kinds = ((info.issym(), f"symbolic link to {info.linkname!r}"),
             (info.islnk(), f"hard link to {info.linkname!r}"),
             (info.ischr() or info.isblk(), "device file"),
             (info.isfifo(), "FIFO"),
             (info.issparse(), "sparse file"))
    for matched, kind in kinds:
        if matched:
            raise _unsafe(archive, info.name, f"{kind}; only regular files are read")
    if not info.isreg():
        raise _unsafe(archive, info.name, f"tar member type {info.type!r}; only regular files are read")


def _check_zip_entry(archive: Path, info: zipfile.ZipInfo) -> None:
    """Refuse what an unzip tool would not create as a plain file: Unix file types, encryption."""
    file_type = stat.S_IFMT(info.external_attr >> 16)  # the Unix st_mode, 0 when not recorded
    if file_type not in (0, stat.S_IFREG):
        kind = "symbolic link" if file_type == stat.S_IFLNK else f"file type {oct(file_type)}"
        raise _unsafe(archive, info.filename, f"{kind}; only regular files are read")
    if info.flag_bits & 0x1:
        raise _unsafe(archive, info.filename, "encrypted member")


def _read_exactly(archive: Path, name: str, member: IO[bytes], declared: int) -> bytes:
    """Read at most one byte past `declared`: more is refused, less means the archive is cut short."""
    data = member.read(declared + 1)
    if len(data) > declared:
        raise _unsafe(archive, name, f"holds more bytes than its declared size of {declared}")
    if len(data) < declared:
        raise CorruptArchiveError(corrupt_message(archive, f"{len(data)} of {declared} bytes", name))
    return data


@contextlib.contextmanager
def _corrupt_guard(archive: Path, member: str | None = None) -> Iterator[None]:
    try:
        yield
    except _CORRUPT_ERRORS as exc:
        raise CorruptArchiveError(corrupt_message(archive, f"{type(exc).__name__}: {exc}", member)) from exc


def _decompressed(path: Path) -> IO[bytes]:
    """The file's decompressed bytes, the compression told by its magic bytes (as `tar -x` does)."""
    with path.open("rb") as f:
        magic = f.read(8)
    for prefix, opener in _DECOMPRESSORS:
        if magic.startswith(prefix):
            return opener(path)
    return path.open("rb")


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f"{path}: archive missing; run the download stage "
                           f"(`dvc repro download@{path.parent.name}`)")
    return path


def _unsafe(archive: Path, member: str, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive}: refusing member {member!r}: {reason}")
