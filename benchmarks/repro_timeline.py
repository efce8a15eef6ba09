"""Where a `dvc repro` spends its wall time: run it (or read a log this script wrote before), time every stage
from DVC's own "Running stage" lines, and sum the stages by kind (train, evaluate, the per-dataset and
per-task stages, report).

    python benchmarks/repro_timeline.py [--log repro.log] [-- dvc repro arguments...]
    python benchmarks/repro_timeline.py --read repro.log

A stage's time runs from its "Running stage" line to the next one (or to the end): the stage's process and
DVC's own work after it (hashing outputs, the run cache, rewriting dvc.lock). Name the CPU (lscpu) with the
numbers.
"""
from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import time
from pathlib import Path

STAGE_LINE = re.compile(r"^(\d+\.\d+) Running stage '([^']+)'")


def run(args: list[str], log: Path) -> int:
    """`dvc repro ARGS`, its output echoed and written to `log` with a wall-clock stamp on every line."""
    start = time.time()
    with log.open("w") as out:
        out.write(f"{start:.3f} START\n")
        proc = subprocess.Popen(["dvc", "repro", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
        for line in proc.stdout:
            for part in line.rstrip("\n").split("\r"):
                if part.strip():
                    out.write(f"{time.time():.3f} {part}\n")
            sys.stdout.write(line)
        code = proc.wait()
        out.write(f"{time.time():.3f} END {code}\n")
    return code


def timeline(log: Path) -> tuple[list[tuple[str, float]], float]:
    """(stage, seconds) in the order they ran, and the whole run's wall seconds."""
    lines = log.read_text(errors="replace").splitlines()
    stamps = [float(line.split(" ", 1)[0]) for line in lines if re.match(r"^\d+\.\d+ ", line)]
    starts = [(float(m.group(1)), m.group(2)) for m in map(STAGE_LINE.match, lines) if m]
    ends = [t for t, _ in starts[1:]] + [stamps[-1]]
    return [(name, end - t) for (t, name), end in zip(starts, ends)], stamps[-1] - stamps[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", type=Path, default=Path("repro-timeline.log"))
    parser.add_argument("--read", type=Path, help="summarise a log written before; run nothing")
    parser.add_argument("dvc_args", nargs="*")
    args = parser.parse_args()
    code = 0
    if args.read is None:
        code = run(args.dvc_args, args.log)
    stages, wall = timeline(args.read or args.log)
    by_kind: dict[str, list[float]] = collections.defaultdict(list)
    for name, seconds in stages:
        by_kind[name.split("@")[0]].append(seconds)
    print(f"\n{len(stages)} stages, {wall / 60:.1f} min wall")
    print(f"{'kind':<16}{'stages':>7}{'total s':>10}{'mean s':>9}{'share':>8}")
    for kind, times in sorted(by_kind.items(), key=lambda kv: -sum(kv[1])):
        print(f"{kind:<16}{len(times):>7}{sum(times):>10.0f}{sum(times) / len(times):>9.1f}{sum(times) / wall:>8.0%}")
    print("\nslowest stages:")
    for name, seconds in sorted(stages, key=lambda s: -s[1])[:10]:
        print(f"  {name:<32}{seconds:>7.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
