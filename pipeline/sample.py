"""Stage sample@<model>: draw samples -> samples/<model>.h5 and a grid samples/<model>.png."""
from pathlib import Path

from genlab.cli import one_arg, run_stage
from genlab.config import load_params


def main(argv):
    params = load_params()
    name = one_arg(argv, "model name")
    params.model(name)
    from genlab.sampling.sample import generate_samples, sample_grid, write_samples
    from genlab.tracking import TrainingRun
    from genlab.training.device import resolve_device
    from genlab.training.loop import load_model

    cfg = params.sample
    model = load_model(Path("models") / name, resolve_device(params.train["device"]))
    images, labels = generate_samples(model, cfg["num_samples"], cfg["batch_size"], params.seed)
    write_samples(Path("samples") / f"{name}.h5", images, labels,
                  {"model": name, "type": model.type_name, "seed": params.seed, "n": len(images)})
    grid = Path("samples") / f"{name}.png"
    sample_grid(grid, images, labels, model.num_classes, cfg["grid_size"])
    TrainingRun.from_dir(Path("models") / name).log_artifact(grid, "samples")


if __name__ == "__main__":
    run_stage(main)
