"""Stage train@<model>: train every training seed of one entry of `models:` -> models/<m>/seed-<s>/ each,
with one MLflow run a seed nested under the model's parent run (genlab.training.seeds).

With `train.nproc: N` > 1 the stage re-runs itself under torchrun as N data-parallel processes.

The dataset classifier is given to every model: SRGAN's content loss may use its features."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import ParamsError, load_params


def main(argv):
    name, data, classifier, out_dir, curves = positional(argv, "model", "packed.h5", "classifier.pt", "out_dir",
                                                         "curves_dir")
    params = load_params()
    params.model(name)  # validate, and reach the tracking store, before the heavy imports
    from genlab.tracking import require_store

    require_store()
    from genlab.training import distributed

    if params.train["best_metric"] != "none" and not distributed.under_torchrun():  # said once, not per process
        from genlab.data.hdf5 import say_whole_splits

        say_whole_splits(data, {"train.best_real": ("train", params.train["best_real"])})
    from genlab.device import processes_problem, resolve_device

    if params.train["nproc"] > 1 and not distributed.under_torchrun():  # train.nproc processes, data-parallel
        problem = processes_problem(params.train["nproc"], resolve_device(params.train["device"]))
        if problem:
            raise ParamsError(f"train.nproc: {problem}")
        return distributed.run_under_torchrun(params.train["nproc"], [__file__, *argv])
    from genlab.tracking import TrainingRun, log_lineage
    from genlab.layout import seed_path
    from genlab.training.seeds import train_seeds

    results = train_seeds(params, name, Path(data), Path(out_dir), Path(curves), Path(classifier))
    if not distributed.current_ranks().main:
        return 0
    log_lineage([TrainingRun.from_dir(Path(out_dir)),  # the parent run and each seed's
                 *(TrainingRun.from_dir(seed_path(Path(out_dir), r.seed)) for r in results)], f"train@{name}")
    for result in results:
        done = "kept (already trained)" if result.kept else f"{result.images_per_second:.0f} img/s"
        print(f"{name} seed {result.seed}: {result.steps} steps, {done} ({result.device}, {result.precision}), "
              f"MLflow run {result.run_id or 'not logged (GENLAB_TRACKING=off)'}")


if __name__ == "__main__":
    run_stage(main)
