"""Stage real_features@<dataset>: Inception features of the real test split, computed once."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    data, out = map(Path, positional(argv, "packed.h5", "out.h5"))
    params = load_params(models=False)
    from genlab.data.hdf5 import say_whole_splits

    say_whole_splits(data, {"eval.num_real": ("test", params.eval["num_real"])})
    from genlab.metrics.evaluate import compute_real_features

    print(f"real features: {compute_real_features(data, out, params.eval)}")


if __name__ == "__main__":
    run_stage(main)
