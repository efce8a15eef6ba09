"""Stage evaluate@<model>: FID/KID/precision/recall and the classifier view of a model's samples
-> its metrics file and its MLflow run."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    name, samples, real, classifier, classifier_features, model_dir, out = positional(
        argv, "model", "samples.h5", "real_features.h5", "classifier.pt", "classifier_features.h5",
        "model_dir", "metrics.json")
    params = load_params()
    params.model(name)  # validate, and reach the tracking store, before the heavy imports
    from genlab.tracking import require_store

    require_store()
    from genlab.io import protocol_path, write_metrics
    from genlab.metrics.evaluate import EvaluatorFiles, evaluate_samples, metric_numbers, mlflow_metrics
    from genlab.sampling.sample import read_samples
    from genlab.tracking import TrainingRun

    images, labels, info = read_samples(Path(samples))
    evaluator = EvaluatorFiles(Path(classifier), Path(classifier_features))
    record = {"model": name, "train_precision": info.get("train_precision", "fp32"),
              **evaluate_samples(images, labels, Path(real), evaluator, params.eval, params.seed)}
    write_metrics(Path(out), record, metric_numbers(record))
    run = TrainingRun.from_dir(Path(model_dir))
    run.log_metrics(mlflow_metrics(record), step=0)
    run.flush()
    run.log_artifact(Path(out), "metrics")
    run.log_artifact(protocol_path(Path(out)), "metrics")
    run.log_lineage(f"evaluate@{name}")
    print(f"{name}: FID {record['fid']['value']:.2f}  KID {record['kid']['mean']:.4f} "
          f"(N={record['fid']['n_fake']} vs {record['fid']['n_real']} real, {record['fid']['extractor']})")


if __name__ == "__main__":
    run_stage(main)
