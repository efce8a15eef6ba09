"""The one error root: every failure genlab knows is a GenlabError, reported as one line (no traceback)
whose message says what to do, with the same exit code from a stage and from the `genlab` command:

    1  the work failed (a download, a diverged loss, a damaged file): the message names what to re-run
    2  the input is wrong (params.yaml, a command's arguments, a name or file given): fix it and re-run
"""

EXIT_FAILED, EXIT_INPUT = 1, 2


class GenlabError(RuntimeError):
    """Base of the known, user-actionable failures (download, divergence, ...)."""

    exit_code = EXIT_FAILED
    prefix = ""  # what the one-line report puts before the message

    def report(self) -> str:
        return f"error: {self.prefix}{self}"


class InputError(GenlabError):
    """What the user gave is not allowed: params.yaml, a command's arguments, a run, model or file name."""

    exit_code = EXIT_INPUT
