"""Entry points of the pipeline stages: turn known failures into one clear line and their exit code
(genlab.errors: the same as the `genlab` command's)."""
from __future__ import annotations

import gc
import sys
from typing import Callable

from genlab.errors import EXIT_FAILED, GenlabError, InputError

STAGE_GC_THRESHOLDS = (100_000, 50, 100)


def run_stage(main: Callable[[list[str]], int | None]) -> None:
    """Call main(argv) and exit with what it returns (None: 0); print `error: ...` and exit non-zero instead
    of a traceback for known errors."""
    # A stage's set-up is imports (torch, MLflow, torch-fidelity, DVC) that create millions of long-lived
    # objects; CPython's default thresholds (700, 10, 10) re-scan them all in repeated full collections.
    # Rarer collections take ~1 s off every stage's start-up (benchmarks/stage_startup.py) and still
    # collect cyclic garbage in long training loops.
    gc.set_threshold(*STAGE_GC_THRESHOLDS)
    try:
        code = main(sys.argv[1:])
    except GenlabError as err:
        print(err.report(), file=sys.stderr)
        sys.exit(err.exit_code)
    except FileNotFoundError as err:  # an input file of the stage is missing: re-run the stage before it
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        print("interrupted; the last finished epoch's checkpoint is kept and the stage resumes from it",
              file=sys.stderr)
        sys.exit(130)
    if code:
        sys.exit(code)


class UsageError(InputError):
    """A stage script was called with the wrong arguments (dvc.yaml and the script disagree)."""


def positional(argv: list[str], *names: str) -> list[str]:
    """The stage's positional arguments, named for the error when their number is wrong."""
    if len(argv) != len(names):
        raise UsageError(f"expected {len(names)} arguments ({' '.join(f'<{n}>' for n in names)}), "
                         f"got {len(argv)}: {' '.join(argv) or '(none)'}; the stage's cmd in dvc.yaml gives them")
    return list(argv)

