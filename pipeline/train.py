"""Stage train@<model>: train one entry of `models:` -> its output directory (+ its MLflow run).

With `train.nproc: N` > 1 the stage re-runs itself under torchrun as N data-parallel processes.

The dataset classifier is given to every model: SRGAN's content loss may use its features."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    name, data, classifier, out_dir, curves = positional(argv, "model", "packed.h5", "classifier.pt", "out_dir",
                                                         "curves.csv")
    params = load_params()
    params.model(name)  # validate, and reach the tracking store, before the heavy imports
    from genlab.tracking import require_store

    require_store()
    from genlab.training import distributed

    if params.train["nproc"] > 1 and not distributed.under_torchrun():  # train.nproc processes, data-parallel
        return distributed.run_under_torchrun(params.train["nproc"], [__file__, *argv])
    from genlab.tracking import TrainingRun
    from genlab.training.loop import train_model

    result = train_model(params, name, Path(data), Path(out_dir), Path(curves), Path(classifier))
    if not distributed.current_ranks().main:
        return 0
    TrainingRun.from_dir(Path(out_dir)).log_lineage(f"train@{name}")
    print(f"{name}: {result.steps} steps, {result.images_per_second:.0f} img/s "
          f"({result.device}, {result.precision}), MLflow run {result.run_id or 'not logged (GENLAB_TRACKING=off)'}")


if __name__ == "__main__":
    run_stage(main)
