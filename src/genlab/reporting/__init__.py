"""Reports over all models: the leaderboard (CSV, Markdown, HTML) with grids and curves, per dataset."""
from genlab.reporting.leaderboard import ModelEntry, leaderboard_frame, reference_metrics_name, write_report

__all__ = ["ModelEntry", "leaderboard_frame", "reference_metrics_name", "write_report"]
