"""Weights files (checkpoints, models, the dataset classifier): written atomically, read as data only.

A `.pt` file is a pickle, and an unrestricted `torch.load` runs whatever code the pickle names.
These files travel through DVC remotes and MLflow artifacts, so they are read with
`weights_only=True` and no extra allowlisted globals: what genlab writes is plain dicts, lists,
tuples, str, numbers, None and tensors, and anything else is refused before it can run. Every
failure is one `GenlabError` line naming the file and what to do, never a torch traceback.
"""
from __future__ import annotations

import io
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from genlab.errors import GenlabError
from genlab.io import write_bytes_atomic


class WeightsFileError(GenlabError):
    """A weights file that cannot be used: empty, truncated, corrupt or not written by genlab."""

    def __init__(self, path: Path, problem: str, remedy: str):
        self.path, self.problem, self.remedy = Path(path), problem, remedy
        super().__init__(f"{path}: {problem}; {remedy}")


class UnsafeWeightsFile(WeightsFileError):
    """A weights file whose pickle names code to run (a global outside torch's allowlist)."""


def save_torch_atomic(obj: Any, path: Path) -> None:
    """torch.save to memory, then one atomic write: a crash never leaves half a file behind."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_weights(path: Path, remedy: str, required: tuple[str, ...] = (),
                 map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """The dict saved at `path`, read as data only; `remedy` (what to re-run) ends every error.

    Raises UnsafeWeightsFile when the pickle names a global (the payload is never called), and
    WeightsFileError when the file is empty, truncated, corrupt, or lacks the `required` keys."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols: our error says more
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise  # not damage: the file is missing or not ours to read, and the error already says so
        raise _refusal(path, err, remedy) from None  # torch's own traceback says nothing more to a user
    return _checked(path, blob, required, remedy)


def _refusal(path: Path, err: Exception, remedy: str) -> WeightsFileError:
    """What a failed weights-only load means: a refused global is a payload; all else is damage
    (a cut zip fails as RuntimeError or OSError, an empty file as EOFError, noise as UnpicklingError)."""
    global_line = _refused_global(err) if isinstance(err, pickle.UnpicklingError) else ""
    if global_line:
        return UnsafeWeightsFile(path, f"not a genlab weights file: it asks to call {global_line} on load, "
                                       f"so it will not be loaded", remedy)
    return WeightsFileError(path, f"cannot be read ({_damage(path)})", remedy)


def _refused_global(err: pickle.UnpicklingError) -> str:
    """The global torch refused (e.g. `posix.system`), or "" when the pickle was refused for another reason."""
    found = re.search(r"GLOBAL (\S+)", str(err))
    return found.group(1) if found else ""


def _damage(path: Path) -> str:
    size = path.stat().st_size
    return "empty file" if size == 0 else f"truncated or corrupt, {size} bytes"


def _checked(path: Path, blob: Any, required: tuple[str, ...], remedy: str) -> dict[str, Any]:
    """The blob when it is a dict holding `required`; a file of another shape is not ours."""
    missing = [key for key in required if not isinstance(blob, dict) or key not in blob]
    if missing:
        raise WeightsFileError(path, f"not a genlab weights file (no {', '.join(missing)}), "
                                     f"so it will not be loaded", remedy)
    return blob
