"""Stage evaluate@<model>: every registered metric that applies to the model (genlab.metrics.registry)
-> its metrics file and its MLflow run. Noise-to-image samples: FID/KID/precision/recall, IS and the
classifier view; a translation model's outputs: the same against its task's target features, plus
PSNR/SSIM/L1 (paired tasks), cycle L1 (cycle models) and task accuracy (domain adaptation)."""
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
    from genlab.metrics.registry import require_valid_metrics

    require_valid_metrics(params.eval["metrics"])
    from genlab.io import protocol_path, write_metrics
    from genlab.metrics.evaluate import EvaluatorFiles, evaluate, metric_numbers, mlflow_metrics, samples_context
    from genlab.metrics.registry import summary
    from genlab.tracking import TrainingRun

    evaluator = EvaluatorFiles(Path(classifier), Path(classifier_features))
    ctx, info = samples_context(Path(samples), Path(real), evaluator, params.eval, params.seed)
    record = {"model": name, "train_precision": info.get("train_precision", "fp32"),
              **evaluate(ctx, params.eval.get("metrics"))}
    write_metrics(Path(out), record, metric_numbers(record))
    run = TrainingRun.from_dir(Path(model_dir))
    run.log_metrics(mlflow_metrics(record), step=0)
    run.flush()
    run.log_artifact(Path(out), "metrics")
    run.log_artifact(protocol_path(Path(out)), "metrics")
    run.log_lineage(f"evaluate@{name}")
    print(f"{name}: {summary(record)}")


if __name__ == "__main__":
    run_stage(main)
