"""A model's metrics over its training seeds (and a baseline's over disjoint real subsets).

Each seed's samples get their own record (metrics/<m>/seed-<s>.json, with its protocol file), scored as
one model's samples always were; the model's metrics file (metrics/<m>.json) holds, for every number,
the mean, std, min and max over seeds. That std is the training-seed spread: how far a re-run with
another seed moves the number. It is not the estimator's own noise, which a record keeps beside its
value (KID's `std`: the spread over random subsets of one set of samples)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from genlab.io import write_json_atomic, write_metrics
from genlab.layout import seed_path
from genlab.metrics.registry import metric_numbers
from genlab.metrics.stats import summarize

SPREAD = ("mean", "std", "min", "max")


def aggregate(records: Mapping[int, Mapping[str, Any]], over: str) -> tuple[dict, dict]:
    """(the DVC metrics file's numbers, the protocol record) of several records of one model or baseline.

    The protocol record is the first member's record (its protocol entries: N, extractor, ...) with a
    `spread` entry: what the members are (`over`), their ids, and every number's values and summary."""
    members = list(records)
    per_number: dict[str, list[Any]] = {}
    for member in members:
        for number, value in metric_numbers(records[member]).items():
            per_number.setdefault(number, [None] * len(members))[members.index(member)] = value
    numbers = {number: {"values": values, **summarize([v for v in values if v is not None])} for number, values in per_number.items()}
    spread = {"over": over, "members": members, "numbers": numbers,
              "std_is": f"std (ddof=1) over {over}: how far a re-run moves the number, not the estimator's noise"}
    flat = {stat: {number: entry[stat] for number, entry in numbers.items()} for stat in SPREAD}
    flat["n"] = len(members)
    return flat, {**records[members[0]], "spread": spread}


def write_aggregate(path: Path, records: Mapping[int, Mapping[str, Any]], over: str, model: str) -> dict:
    flat, record = aggregate(records, over)
    write_metrics(path, {**record, "model": model}, flat)
    return record


def write_seed_records(out_dir: Path, records: Mapping[int, Mapping[str, Any]]) -> None:
    """metrics/<m>/seed-<s>.json (numbers) and .protocol.json (the whole record), one pair a seed."""
    for seed, record in records.items():
        write_metrics(seed_path(out_dir, seed, ".json"), record, metric_numbers(record))


def spread_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """The parent run's numbers: `<number>.mean|.std|.min|.max` over the members (nulls left out)."""
    out = {}
    for number, entry in record["spread"]["numbers"].items():
        for stat in SPREAD:
            if entry[stat] is not None:
                out[f"{number}.{stat}"] = entry[stat]
    out["seeds"] = len(record["spread"]["members"])
    return out


def inception_reason(position: int, cfg: Mapping[str, Any]) -> str | None:
    """Why the seed at `position` of its model's list gets no Inception metrics (None: it gets them)."""
    limit = cfg.get("inception_seeds")
    if limit is None or position < limit:
        return None
    return (f"eval.inception_seeds: {limit}: the Inception cross-check is computed for the first {limit} training "
            f"seed(s) of each model; the classifier-space metrics cover every seed")


def member_values(record: Mapping[str, Any], number: str) -> list[float]:
    """The finite per-member values of one number in an aggregate protocol record ([] when absent)."""
    entry = record.get("spread", {}).get("numbers", {}).get(number, {})
    return [float(v) for v in entry.get("values", []) if v is not None and math.isfinite(float(v))]


__all__: Iterable[str] = ("aggregate", "write_aggregate", "write_seed_records", "spread_metrics", "inception_reason",
                          "member_values")
