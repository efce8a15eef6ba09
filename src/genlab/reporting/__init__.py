"""Reports over all models: the leaderboard (CSV, Markdown, HTML) with grids and curves."""
from genlab.reporting.leaderboard import leaderboard_frame, write_report

__all__ = ["leaderboard_frame", "write_report"]
