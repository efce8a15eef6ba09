"""Stage real_features@<dataset>: Inception features of the real test split, cached once."""
import sys
from pathlib import Path

from genlab.cli import run_stage
from genlab.config import load_params


def main(argv):
    params = load_params()
    if len(argv) != 2:
        sys.exit("usage: real_features.py <dataset> <output.h5>")
    from genlab.metrics.evaluate import compute_real_features

    protocol = compute_real_features(Path("data/packed") / f"{argv[0]}.h5", Path(argv[1]), params.eval)
    print(f"real features: {protocol}")


if __name__ == "__main__":
    run_stage(main)
