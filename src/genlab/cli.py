"""Entry points of the pipeline stages: turn known failures into one clear line and an exit code."""
from __future__ import annotations

import sys
from typing import Callable

from genlab.config import ParamsError
from genlab.errors import GenlabError

EXIT_PARAMS = 2
EXIT_FAILED = 1


def run_stage(main: Callable[[list[str]], None]) -> None:
    """Call main(argv); print `error: ...` and exit non-zero instead of a traceback for known errors."""
    try:
        main(sys.argv[1:])
    except ParamsError as err:
        print(f"error: invalid params.yaml: {err}", file=sys.stderr)
        sys.exit(EXIT_PARAMS)
    except (GenlabError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        print("interrupted; the last finished epoch's checkpoint is kept and the stage resumes from it",
              file=sys.stderr)
        sys.exit(130)


def one_arg(argv: list[str], what: str) -> str:
    if len(argv) != 1:
        raise ParamsError(f"expected one argument, the {what}; got {argv!r}")
    return argv[0]
