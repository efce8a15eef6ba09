"""Stage pack@<dataset>: raw files -> one HDF5 file of uint8 (N, C, H, W) images (+ labels)."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    name, raw_dir, out_path = positional(argv, "dataset", "raw_dir", "out.h5")
    prep = load_params(models=False).dataset(name).preprocessing
    from genlab.data.hdf5 import pack_dataset

    summary = pack_dataset(name, Path(raw_dir), Path(out_path), prep)
    print(f"pack {name}: {summary}")


if __name__ == "__main__":
    run_stage(main)
