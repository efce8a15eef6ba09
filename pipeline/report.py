"""Stage report: every model's metrics over its training seeds, one section per dataset (with its
reference row) and per image-to-image task (with its identity row) -> a leaderboard ranked by an unbiased
key with rank intervals and tie groups (CSV, Markdown, HTML with the spread over seeds, quality against
compute, sample grids, nearest training images and curves); the figures also go to each model's parent run."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import departures, load_params


def main(argv):
    metrics, models, curves, samples, grids, packed, out = map(Path, positional(
        argv, "metrics_dir", "models_dir", "curves_dir", "samples_dir", "grids_dir", "packed_dir", "report_dir"))
    params = load_params()
    from genlab.tracking import require_store

    require_store()
    from genlab.reporting import ModelEntry, Ranking, log_to_parent_runs, write_report

    entries = [ModelEntry(name, spec.type, spec.dataset, params.seeds_of(name), tuple(departures(spec)))
               for name, spec in params.models.items()]
    ranking = Ranking(params.report["rank_by"], params.report["tie_probability"], params.report["bootstrap"],
                      params.seed)
    frame = write_report(entries, list(params.datasets), tasks=list(params.tasks), metrics_dir=metrics,
                         models_dir=models, plots_dir=curves, samples_dir=samples, grids_dir=grids, packed_dir=packed,
                         report_dir=out,
                         ranking=ranking)
    log_to_parent_runs(entries, models, out)
    print(frame[["dataset", "model", "group", "rank", "key_mean", "key_std", "fid", "seeds", "status"]]
          .to_string(index=False))


if __name__ == "__main__":
    run_stage(main)
