"""Stage report: every model's metrics over its training seeds, one section per dataset (with its
reference row) and per image-to-image task (with its identity row) -> a leaderboard ranked by an unbiased
key with rank intervals and tie groups (CSV, Markdown, HTML with the spread over seeds, quality against
compute, sample grids, nearest training images and curves); the figures also go to each model's parent run, and
each section's first-ranked model gets the registry alias `champion` (its first seed's sample.checkpoint)."""
import json
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import departures, load_params


def main(argv):
    metrics, models, curves, samples, grids, registered, packed, out = map(Path, positional(
        argv, "metrics_dir", "models_dir", "curves_dir", "samples_dir", "grids_dir", "registry_dir", "packed_dir",
        "report_dir"))
    params = load_params()
    from genlab.tracking import require_store

    require_store()
    from genlab.reporting import ModelEntry, Ranking, champions, log_to_parent_runs, write_report
    from genlab.tracking import registry, tracking_enabled

    entries = [ModelEntry(name, spec.type, spec.dataset, params.seeds_of(name), tuple(departures(spec)))
               for name, spec in params.models.items()]
    ranking = Ranking(params.report["rank_by"], params.report["tie_probability"], params.report["bootstrap"],
                      params.seed)
    frame = write_report(entries, list(params.datasets), tasks=list(params.tasks), metrics_dir=metrics,
                         models_dir=models, plots_dir=curves, samples_dir=samples, grids_dir=grids, packed_dir=packed,
                         report_dir=out,
                         ranking=ranking)
    log_to_parent_runs(entries, models, out)
    for section, name in champions(frame).items() if tracking_enabled() else ():
        record = json.loads((registered / f"{name}.json").read_text())
        first = record["versions"].get(str(params.seeds_of(name)[0]), {})
        version = first.get(params.sample["checkpoint"]) or first.get("last")
        if version is not None:
            registry.set_alias(registry.client(), record["registered_model"], "champion", version)
            print(f"champion of {section}: models:/{record['registered_model']}@champion (version {version})")
    print(frame[["dataset", "model", "group", "rank", "key_mean", "key_std", "fid", "seeds", "status"]]
          .to_string(index=False))


if __name__ == "__main__":
    run_stage(main)
