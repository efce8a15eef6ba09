"""Stage report: every model's metrics over its training seeds, one section per dataset (with its
reference row) and per image-to-image task (with its identity row) -> a leaderboard ranked by an unbiased
key with rank intervals and tie groups (CSV, Markdown, HTML with the spread over seeds, quality against
compute, sample grids, nearest training images and curves); the figures also go to each model's parent run.

Then the Model Registry -> registry/<m>.json: every seed's last and best checkpoints as MLflow Models
(pyfunc, through models-from-code), logged to the seed runs and registered as versions of
`<dataset or task>.<model>` with the aliases `last` and `best` on the first seed's (a checkpoint registered
before keeps its version), and `champion` on each section's first-ranked model (its first seed's
sample.checkpoint), taken off every other model of the section."""
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
    from genlab.io import write_json_atomic
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
    tracking = tracking_enabled()
    if tracking:
        from genlab.serving.mlflow_model import register_entry

        cl = registry.client()
    records = {}
    for entry in entries:
        if not tracking:  # nothing to register into
            records[entry.name] = {"registered_model": None, "versions": {}, "aliases": {}, "tracking": "off"}
        else:
            records[entry.name] = register_entry(entry.name, entry.dataset, models / entry.name,
                                                 metrics / entry.name, entry.seeds, params.sample["batch_size"], cl)
        record = records[entry.name]
        print(f"{record['registered_model']}: versions {record['versions']}, aliases {record['aliases']}")
    for section, name in champions(frame).items() if tracking else ():
        record = records[name]
        first = record["versions"].get(str(params.seeds_of(name)[0]), {})
        version = first.get(params.sample["checkpoint"]) or first.get("last")
        if version is not None:
            taken = registry.move_alias(cl, section, "champion", record["registered_model"], version)
            record["aliases"]["champion"] = version
            print(f"champion of {section}: models:/{record['registered_model']}@champion (version {version})"
                  + (f", taken from {', '.join(taken)}" if taken else ""))
    registered.mkdir(parents=True, exist_ok=True)
    for name, record in records.items():
        write_json_atomic(registered / f"{name}.json", record)
    print(frame[["dataset", "model", "group", "rank", "key_mean", "key_std", "fid", "seeds", "status"]]
          .to_string(index=False))


if __name__ == "__main__":
    run_stage(main)
