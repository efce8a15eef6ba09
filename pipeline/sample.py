"""Stage sample@<model>: draw samples from a trained model (an image-to-image model translates its
task's first test inputs) -> an HDF5 file and a grid PNG."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    name, data, model_dir, out, grid = positional(argv, "model", "packed.h5", "model_dir", "samples.h5", "grid.png")
    params = load_params()
    params.model(name)  # validate, and reach the tracking store, before the heavy imports
    from genlab.tracking import require_store

    require_store()
    from genlab.sampling.sample import (generate_samples, sample_grid, translate_samples, translation_grid,
                                        write_samples)
    from genlab.tracking import TrainingRun
    from genlab.training.device import resolve_device
    from genlab.training.loop import load_model

    cfg = params.sample
    model = load_model(Path(model_dir), resolve_device(params.train["device"]), cfg["checkpoint"])
    info = {"model": name, "type": model.type_name, "seed": params.seed, "train_precision": model.train_precision,
            "checkpoint": cfg["checkpoint"]}
    if model.translation:  # the first N test inputs of its task, translated
        samples = translate_samples(model, Path(data), cfg["num_samples"], cfg["batch_size"], params.seed)
        images = samples.pop("images")
        write_samples(Path(out), images, None, {**info, "n": len(images), "translation": True,
                                                "task": params.model(name).dataset, "paired": model.paired is True},
                      samples)
        translation_grid(Path(grid), {"images": images, **samples}, model.image_shape, cfg["grid_size"])
    else:
        images, labels = generate_samples(model, cfg["num_samples"], cfg["batch_size"], params.seed)
        write_samples(Path(out), images, labels, {**info, "n": len(images)})
        sample_grid(Path(grid), images, labels, model.num_classes, cfg["grid_size"])
    run = TrainingRun.from_dir(Path(model_dir))
    run.set_tags({"genlab.sampled_checkpoint": cfg["checkpoint"]})
    run.log_artifact(Path(grid), "samples")
    run.log_lineage(f"sample@{name}")


if __name__ == "__main__":
    run_stage(main)
