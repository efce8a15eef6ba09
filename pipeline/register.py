"""Stage register@<model>: every training seed's last and best checkpoints as MLflow Models (pyfunc, through
models-from-code), logged to the seed runs and registered as versions of `<dataset or task>.<model>`, with the
aliases `last` and `best` on the first seed's -> registry/<m>.json (the names, versions and aliases)."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    name, model_dir, metrics_dir, out = positional(argv, "model", "model_dir", "metrics_dir", "registry.json")
    params = load_params()
    spec = params.model(name)
    from genlab.tracking import require_store, tracking_enabled

    require_store()
    from genlab.io import write_json_atomic

    if not tracking_enabled():  # nothing to register into
        write_json_atomic(out, {"registered_model": None, "versions": {}, "aliases": {}, "tracking": "off"})
        return
    from genlab.serving.mlflow_model import register_entry

    record = register_entry(name, spec.dataset, Path(model_dir), Path(metrics_dir), params.seeds_of(name),
                            params.sample["batch_size"])
    write_json_atomic(out, record)
    print(f"{record['registered_model']}: versions {record['versions']}, aliases {record['aliases']}")


if __name__ == "__main__":
    run_stage(main)
