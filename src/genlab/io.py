"""Atomic output writing: every output is written to a temp file beside it, then renamed.

A crash or Ctrl-C never leaves a half-written file where DVC or a later stage would read it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping


def content_key(array) -> str:
    """A key for caches of what is computed from an array's contents (a CPU tensor or a NumPy array): the sha1
    of its bytes, and its shape."""
    data = array.numpy() if hasattr(array, "numpy") else array
    return hashlib.sha1(data.tobytes()).hexdigest() + str(tuple(data.shape))


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """The hex digest of a file's bytes, read in blocks (md5: what DVC records for a file)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path in the target's directory; on success rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Stable JSON (sorted keys, fixed indent, trailing newline) so identical data hash identically."""
    text = json.dumps(_json_safe(obj), indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(path, text.encode())


def load_yaml(text: str) -> Any:
    """YAML -> plain values, with libyaml's C parser where PyYAML has it: a pipeline's dvc.lock runs to
    hundreds of KB, which the pure-Python parser takes ~0.5 s to read (~0.07 s in C), and stages read it."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def cache_dir() -> Path:
    """genlab's cache outside any repository (downloads, the ONNX Inception graph): $GENLAB_CACHE,
    else $XDG_CACHE_HOME/genlab, else ~/.cache/genlab."""
    if os.environ.get("GENLAB_CACHE"):
        return Path(os.environ["GENLAB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "genlab"


# -- metrics files -------------------------------------------------------------------------
def protocol_path(metrics_path: Path) -> Path:
    """metrics/<name>.json -> metrics/<name>.protocol.json: the full record behind the numbers."""
    return Path(metrics_path).with_suffix(".protocol.json")


def write_metrics(path: Path, record: Mapping[str, Any], numbers: Mapping[str, Any] | None = None) -> None:
    """Two files: `path`, the numbers only (a DVC metrics file: DVC's tables show every field as a
    column), and protocol_path(path), the whole record with each number's protocol and every null's
    reason, read by the leaderboard, `genlab audit` and `genlab compare`. `numbers` defaults to the
    record's top-level numbers."""
    if numbers is None:
        numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    write_json_atomic(protocol_path(path), record)
    write_json_atomic(path, numbers)


def read_record(metrics_path: Path) -> dict[str, Any]:
    """The whole record behind a metrics file (its protocol file)."""
    return json.loads(protocol_path(metrics_path).read_text())
