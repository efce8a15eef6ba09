"""Stage report: every model's metrics, one section per dataset (with its reference row) and per
image-to-image task (with its identity row) -> a leaderboard (CSV, Markdown, HTML with sample grids
and curves)."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    metrics, models, curves, samples, out = map(Path, positional(
        argv, "metrics_dir", "models_dir", "curves_dir", "samples_dir", "report_dir"))
    params = load_params()
    from genlab.reporting import ModelEntry, write_report

    entries = [ModelEntry(name, spec.type, spec.dataset) for name, spec in params.models.items()]
    frame = write_report(entries, list(params.datasets), tasks=list(params.tasks), metrics_dir=metrics, models_dir=models,
                         plots_dir=curves, samples_dir=samples, report_dir=out)
    print(frame[["dataset", "model", "fid", "kid_mean", "n_fake", "status"]].to_string(index=False))


if __name__ == "__main__":
    run_stage(main)
