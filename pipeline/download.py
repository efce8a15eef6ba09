"""Stage download@<dataset>: fetch and verify the raw files into <out_dir> (data/raw/<dataset>/)."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    name, out_dir = positional(argv, "dataset", "out_dir")
    from genlab.data.download import download_dataset
    from genlab.data.sources import dataset_source

    dataset_source(name)  # an unknown name is one line listing the registered ones, before params are read
    dataset = load_params(models=False).dataset(name)
    download_dataset(name, Path(out_dir), source=dataset.source, checksums=dataset.checksums)


if __name__ == "__main__":
    run_stage(main)
