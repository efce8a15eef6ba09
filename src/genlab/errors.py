"""Errors a stage reports as one line (no traceback): the message says what to do."""


class GenlabError(RuntimeError):
    """Base of the known, user-actionable failures (download, divergence, ...)."""
