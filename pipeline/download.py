"""Stage download@<dataset>: fetch and verify the raw files into data/raw/<dataset>/."""
from pathlib import Path

from genlab.cli import one_arg, run_stage
from genlab.data import download_dataset


def main(argv):
    name = one_arg(argv, "dataset name")
    download_dataset(name, Path("data/raw") / name)


if __name__ == "__main__":
    run_stage(main)
