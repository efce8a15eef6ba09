"""Reports over all models: the leaderboard (CSV, Markdown, HTML) with grids, figures and curves, per dataset."""
from genlab.reporting.leaderboard import (ModelEntry, Ranking, champions, leaderboard_frame, log_to_parent_runs,
                                          reference_metrics_name, write_report)

__all__ = ["ModelEntry", "Ranking", "champions", "leaderboard_frame", "log_to_parent_runs", "reference_metrics_name",
           "write_report"]
