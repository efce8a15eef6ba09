"""The rows of an audit report and the comparisons behind them."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genlab.io import file_digest

MATCH, WITHIN, MISMATCH, INCONCLUSIVE, INFO = "match", "within tolerance", "MISMATCH", "inconclusive", "info"


@dataclass
class Check:
    check: str
    recorded: Any
    rebuilt: Any
    verdict: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def add(self, check: str, recorded: Any, rebuilt: Any, verdict: str, detail: str = "") -> Check:
        row = Check(check, recorded, rebuilt, verdict, detail)
        self.checks.append(row)
        return row

    @property
    def mismatches(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == MISMATCH]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.checks:
            out[c.verdict] = out.get(c.verdict, 0) + 1
        return out


def sha256(path: Path) -> str | None:
    return file_digest(path, "sha256") if path.is_file() else None


def short(value: Any, width: int = 18) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def _by_path(items: list[dict[str, Any]] | None) -> dict[str, str | None]:
    return {item["path"]: item.get("md5") for item in items or []}


def _flat_params(params: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for file, values in (params or {}).items():
        for key, value in (values or {}).items():
            out[f"{file}:{key}"] = value
    return out


def entry_differences(recorded: dict[str, Any], locked: dict[str, Any]) -> list[str]:
    """What differs between the entry a run recorded for a stage and a dvc.lock's entry for it."""
    diffs = []
    if recorded.get("cmd") != locked.get("cmd"):
        diffs.append(f"cmd: recorded {recorded.get('cmd')!r}, dvc.lock {locked.get('cmd')!r}")
    for section in ("deps", "outs"):
        mine, theirs = _by_path(recorded.get(section)), _by_path(locked.get(section))
        for path in sorted(set(mine) | set(theirs)):
            if mine.get(path) != theirs.get(path):
                diffs.append(f"{section} {path}: recorded {short(mine.get(path), 14)}, dvc.lock {short(theirs.get(path), 14)}")
    mine, theirs = _flat_params(recorded.get("params")), _flat_params(locked.get("params"))
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key) != theirs.get(key):
            diffs.append(f"params {key}: recorded {mine.get(key)!r}, dvc.lock {theirs.get(key)!r}")
    return diffs


def status_problems(status: dict[str, Any]) -> list[str]:
    """`dvc status --json` of stages -> readable lines ("changed deps: src/genlab/models (modified)")."""
    lines = []
    for stage, changes in status.items():
        for change in changes:
            if isinstance(change, str):
                lines.append(f"{stage}: {change}")
                continue
            for kind, paths in change.items():
                described = ", ".join(f"{p} ({s})" for p, s in paths.items()) if isinstance(paths, dict) else str(paths)
                lines.append(f"{stage}: {kind}: {described}")
    return lines


def compare_number(recorded: float | None, rebuilt: float | None, exact: bool, tolerance: float) -> tuple[str, str]:
    """(verdict, detail) for one metric: exact where the environment matches, else relative tolerance."""
    if recorded is None and rebuilt is None:
        return MATCH, ""
    if recorded is None or rebuilt is None:
        return MISMATCH, "one side has no value"
    if recorded == rebuilt or (math.isnan(recorded) and math.isnan(rebuilt)):
        return MATCH, ""
    if exact:
        return MISMATCH, f"differs by {abs(recorded - rebuilt):.3g} where the environment matches (exact expected)"
    gap = abs(recorded - rebuilt) / max(abs(recorded), abs(rebuilt), 1e-12)
    if gap <= tolerance:
        return WITHIN, f"{gap:.2%} apart, tolerance {tolerance:.2%} (environment differs)"
    return MISMATCH, f"{gap:.2%} apart, beyond the tolerance {tolerance:.2%}"


def format_table(report: Report) -> str:
    rows = [(c.check, short(c.recorded), short(c.rebuilt), c.verdict) for c in report.checks]
    heads = ("check", "recorded", "rebuilt", "verdict")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)), "  ".join("-" * w for w in widths)]
    for c, row in zip(report.checks, rows):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        if c.detail and c.verdict != MATCH:
            lines.extend(f"    {line}" for line in c.detail.splitlines())
    return "\n".join(lines)
