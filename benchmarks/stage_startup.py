"""Start-up of a stage process: the imports every model stage makes (torch, MLflow and its SQL store,
torch-fidelity, DVC), timed in fresh Python processes with CPython's default GC thresholds and with the
ones genlab.cli.run_stage sets, alternating so that both see the same machine state.

    python benchmarks/stage_startup.py [--repeats 5]

Prints the median wall seconds of each and their difference. Name the CPU (lscpu) with the numbers.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from genlab.cli import STAGE_GC_THRESHOLDS

IMPORTS = ("import torch, mlflow, torch_fidelity, dvc.repo; "
           "from mlflow.store.tracking import sqlalchemy_store; import genlab.models")
SETTINGS = {"default (700, 10, 10)": "",
            f"stage {STAGE_GC_THRESHOLDS}": f"import gc; gc.set_threshold{STAGE_GC_THRESHOLDS}; "}


def wall(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    wall(IMPORTS)  # warm the page cache
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(args.repeats):
        for name, prefix in SETTINGS.items():
            times[name].append(wall(prefix + IMPORTS))
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"{name:24s} median {median:.2f} s  ({', '.join(f'{t:.2f}' for t in times[name])})")
    default, stage = medians.values()
    print(f"saved per stage: {default - stage:.2f} s ({default / stage:.2f}x)")


if __name__ == "__main__":
    main()
