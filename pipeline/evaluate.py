"""Stage evaluate@<model>: for each training seed, draw its samples (an image-to-image model translates its
task's first test inputs) -> samples/<m>/seed-<s>.h5 and the grid plots/samples/<m>/seed-<s>.png (a DVC image
plot, and the seed run's `final_samples` image in MLflow); then score them with every registered metric that
applies to the model (genlab.metrics.registry) -> metrics/<m>/seed-<s>.json and the seed's MLflow run; over
the seeds (mean, std, min, max) -> metrics/<m>.json and the model's parent run.

Noise-to-image samples: the rank key (classifier-space KID), FID/KID/precision/recall/density/coverage, IS,
the classifier view and the memorization check; a translation model's outputs: the same against its task's
target features, plus PSNR/SSIM/L1 (paired tasks), cycle L1 (cycle models) and task accuracy (domain
adaptation). Sampling and scoring are one stage: one process start and one dvc.lock update a model."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    (name, data, model_dir, samples, grids, real, classifier, classifier_features, train_features, seeds_dir,
     out) = positional(argv, "model", "packed.h5", "model_dir", "samples_dir", "grids_dir", "real_features.h5",
                       "classifier.pt", "classifier_features.h5", "train_features.h5|-", "metrics_dir",
                       "metrics.json")
    params = load_params()
    params.model(name)  # validate, and reach the tracking store, before the heavy imports
    from genlab.tracking import require_store

    require_store()
    from genlab.metrics.registry import require_valid_metrics

    require_valid_metrics(params.eval["metrics"])
    from genlab.data.hdf5 import read_info, say_whole_splits

    if read_info(data)["input_shape"] is not None:  # a task: its outputs are translations of the test inputs
        say_whole_splits(data, {"sample.num_samples": ("test", params.sample["num_samples"])})
    from genlab.device import resolve_device
    from genlab.io import protocol_path
    from genlab.layout import seed_path
    from genlab.metrics.evaluate import EvaluatorFiles, evaluate, mlflow_metrics, samples_context
    from genlab.metrics.registry import summary
    from genlab.metrics.seeds import inception_reason, spread_metrics, write_aggregate, write_seed_records
    from genlab.sampling.sample import sample_seed
    from genlab.tracking import FINAL_GRID_KEY, TrainingRun, log_lineage
    from PIL import Image

    device = resolve_device(params.train["device"])
    seeds = params.seeds_of(name)
    for seed in seeds:
        sample_seed(params, name, Path(data), seed_path(Path(model_dir), seed),
                    seed_path(Path(samples), seed, ".h5"), seed_path(Path(grids), seed, ".png"), seed, device)
    evaluator = EvaluatorFiles(Path(classifier), Path(classifier_features),
                               None if train_features == "-" else Path(train_features))
    records = {}
    for position, seed in enumerate(seeds):
        ctx, info = samples_context(seed_path(Path(samples), seed, ".h5"), Path(real), evaluator, params.eval,
                                    params.seed)
        ctx.seed_position, ctx.inception_reason = position, inception_reason(position, params.eval)
        records[seed] = {"model": name, "seed": seed, "train_precision": info.get("train_precision", "fp32"),
                         **evaluate(ctx, params.eval.get("metrics"))}
        print(f"{name} seed {seed}: {summary(records[seed])}")
    write_seed_records(Path(seeds_dir), records)
    aggregate = write_aggregate(Path(out), records, "training seeds", name)
    runs, first_grid = [], None
    for seed, record in records.items():
        run = TrainingRun.from_dir(seed_path(Path(model_dir), seed))
        run.set_tags({"genlab.sampled_checkpoint": params.sample["checkpoint"]})
        grid = seed_path(Path(grids), seed, ".png")
        run.log_artifact(grid, "samples")
        with Image.open(grid) as image:  # MLflow's image grid compares runs by this key
            image = image.copy()
        run.log_image(image, key=FINAL_GRID_KEY, step=0)
        if first_grid is None:
            first_grid = image
        run.log_metrics(mlflow_metrics(record), step=0)
        run.flush()
        for path in (seed_path(Path(seeds_dir), seed, ".json"), seed_path(Path(seeds_dir), seed, ".protocol.json")):
            run.log_artifact(path, "metrics")
        runs.append(run)
    parent = TrainingRun.from_dir(Path(model_dir))
    parent.log_image(first_grid, key=FINAL_GRID_KEY, step=0)  # the model's row in the image grid
    parent.log_metrics(spread_metrics(aggregate), step=0)
    parent.flush()
    parent.log_artifact(Path(out), "metrics")
    parent.log_artifact(protocol_path(Path(out)), "metrics")
    log_lineage([*runs, parent], f"evaluate@{name}")


if __name__ == "__main__":
    run_stage(main)
