"""Stage reference: FID/KID of N real train images vs the test features -> metrics/reference.json."""
import sys
from pathlib import Path

from genlab.cli import run_stage
from genlab.config import load_params


def main(argv):
    params = load_params()
    if len(argv) != 1:
        sys.exit("usage: reference.py <real_features.h5>")
    from genlab.metrics.evaluate import evaluate_reference, write_metrics

    dataset = params.data["dataset"]
    record = {"model": "reference", **evaluate_reference(
        Path("data/packed") / f"{dataset}.h5", params.sample["num_samples"], Path(argv[0]), params.eval, params.seed)}
    write_metrics(Path("metrics") / "reference.json", record)
    print(f"reference (real train vs test): FID {record['fid']['value']:.2f}  KID {record['kid']['mean']:.4f} "
          f"(N={record['fid']['n_fake']} vs {record['fid']['n_real']})")


if __name__ == "__main__":
    run_stage(main)
