"""Stage pack@<dataset>: raw files -> data/packed/<dataset>.h5 (uint8 images, int64 labels)."""
from pathlib import Path

from genlab.cli import one_arg, run_stage
from genlab.data import pack_idx_to_hdf5


def main(argv):
    name = one_arg(argv, "dataset name")
    pack_idx_to_hdf5(name, Path("data/raw") / name, Path("data/packed") / f"{name}.h5")


if __name__ == "__main__":
    run_stage(main)
