"""Stage sample@<model>: draw samples from each training seed's model (an image-to-image model translates
its task's first test inputs) -> samples/<m>/seed-<s>.h5, and its grid plots/samples/<m>/seed-<s>.png: a DVC
image plot, and the seed run's `final_samples` image in MLflow (the per-epoch grids are `samples`)."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    name, data, model_dir, out_dir, grids_dir = positional(argv, "model", "packed.h5", "model_dir", "samples_dir",
                                                           "grids_dir")
    params = load_params()
    params.model(name)  # validate, and reach the tracking store, before the heavy imports
    from genlab.tracking import require_store

    require_store()
    from genlab.data.hdf5 import read_info, say_whole_splits

    if read_info(data)["input_shape"] is not None:  # a task: its outputs are translations of the test inputs
        say_whole_splits(data, {"sample.num_samples": ("test", params.sample["num_samples"])})
    from genlab.layout import seed_path
    from genlab.sampling.sample import sample_seed
    from genlab.tracking import TrainingRun, log_lineage
    from genlab.device import resolve_device
    from PIL import Image

    device = resolve_device(params.train["device"])
    runs = []
    for seed in params.seeds_of(name):
        run_dir, grid = seed_path(Path(model_dir), seed), seed_path(Path(grids_dir), seed, ".png")
        sample_seed(params, name, Path(data), run_dir, seed_path(Path(out_dir), seed, ".h5"), grid, seed, device)
        run = TrainingRun.from_dir(run_dir)
        run.set_tags({"genlab.sampled_checkpoint": params.sample["checkpoint"]})
        run.log_artifact(grid, "samples")
        with Image.open(grid) as image:  # MLflow's image grid compares runs by this key
            run.log_image(image.copy(), key="final_samples", step=0)
        runs.append(run)
    log_lineage(runs, f"sample@{name}")


if __name__ == "__main__":
    run_stage(main)
