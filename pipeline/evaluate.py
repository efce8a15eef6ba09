"""Stage evaluate@<model>: FID/KID of samples/<model>.h5 -> metrics/<model>.json and the MLflow run."""
import sys
from pathlib import Path

from genlab.cli import run_stage
from genlab.config import load_params


def main(argv):
    params = load_params()
    if len(argv) != 2:
        sys.exit("usage: evaluate.py <model> <real_features.h5>")
    name, real_features = argv
    params.model(name)
    from genlab.metrics.evaluate import evaluate_samples, mlflow_metrics, write_metrics
    from genlab.sampling.sample import read_samples
    from genlab.tracking import TrainingRun

    images, labels, _ = read_samples(Path("samples") / f"{name}.h5")
    record = {"model": name, **evaluate_samples(images, labels, Path(real_features), params.eval, params.seed)}
    run = TrainingRun.from_dir(Path("models") / name)
    run.log_metrics(mlflow_metrics(record), step=0)
    run.log_dict(record, "metrics.json")
    run.flush()
    write_metrics(Path("metrics") / f"{name}.json", record)
    print(f"{name}: FID {record['fid']['value']:.2f}  KID {record['kid']['mean']:.4f} "
          f"(N={record['fid']['n_fake']} vs {record['fid']['n_real']} real, {record['fid']['extractor']})")


if __name__ == "__main__":
    run_stage(main)
