"""Stage train@<model>: train one entry of `models:` -> models/<model>/ (+ its MLflow run)."""
from pathlib import Path

from genlab.cli import one_arg, run_stage
from genlab.config import load_params


def main(argv):
    params = load_params()
    name = one_arg(argv, "model name")
    params.model(name)  # validate before importing torch-heavy code
    from genlab.training.loop import train_model

    result = train_model(params, name, Path("data/packed") / f"{params.data['dataset']}.h5",
                         Path("models") / name, Path("plots/train") / f"{name}.csv")
    print(f"{name}: {result.steps} steps, {result.images_per_second:.0f} img/s "
          f"({result.device}, {result.precision}), MLflow run {result.run_id}")


if __name__ == "__main__":
    run_stage(main)
