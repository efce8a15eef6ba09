"""The task@<name> stage's work: derive a task (genlab.data.tasks) from a packed file into its own."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from genlab.data.formats import SPLITS
from genlab.data.hdf5 import FORMAT_VERSION, create_file, read_info, read_inputs, read_split, write_arrays
from genlab.data.tasks import TASK_KINDS
from genlab.io import atomic_path, file_digest


def derive_task(name: str, kind: str, settings: Mapping[str, Any], source_path: Path, out_path: Path) -> dict:
    """Write task `name` derived from the packed dataset at `source_path`; returns a summary.

    Each split goes to the kind's `derive` with the source's own inputs where it has them (None otherwise)
    and the seed `settings["seed"]` (0 if unset) plus the split's index."""
    info = read_info(source_path)
    spec = TASK_KINDS[kind]
    md5 = file_digest(source_path)
    record = {"name": name, "kind": kind, "dataset": info["dataset"], **dict(settings),
              "source_md5": md5, "derivation": spec.description, **spec.provenance()}
    has_inputs = info["input_shape"] is not None
    counts = {}
    with atomic_path(out_path) as tmp, create_file(tmp) as f:
        for i, split in enumerate(SPLITS):
            images, labels = read_split(source_path, split)
            inputs, input_labels = read_inputs(source_path, split) if has_inputs else (None, None)
            arrays = spec.derive(images, labels, inputs, input_labels, settings, settings.get("seed", 0) + i)
            if not spec.source_labels:
                arrays.pop("input_labels", None)
            write_arrays(f.create_group(split, track_order=False),
                         {k: arrays[k] for k in ("images", "labels", "inputs", "input_labels")
                          if arrays.get(k) is not None})
            counts[split] = {"inputs": len(arrays["inputs"]), "targets": len(arrays["images"])}
        f.attrs["dataset"] = name
        f.attrs["class_names"] = json.dumps(info["class_names"])
        f.attrs["labelled"] = np.bool_(info["labelled"])
        f.attrs["source_checksums"] = json.dumps(info["source_checksums"], sort_keys=True)
        f.attrs["preprocessing"] = json.dumps(info["preprocessing"], sort_keys=True)
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["paired"] = np.bool_(spec.paired(settings))
        f.attrs["task"] = json.dumps(record, sort_keys=True)
    return {"task": name, "kind": kind, "paired": spec.paired(settings), "splits": counts}
