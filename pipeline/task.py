"""Stage task@<task>: a packed dataset -> an image-to-image task's (input, target) HDF5 file."""
from pathlib import Path

from genlab.cli import positional, run_stage
from genlab.config import load_params


def main(argv):
    name, source, out_path = positional(argv, "task", "packed.h5", "out.h5")
    task = load_params(models=False).task(name)
    from genlab.data.task_files import derive_task

    summary = derive_task(name, task.kind, task.settings, Path(source), Path(out_path))
    print(f"task {name}: {summary}")


if __name__ == "__main__":
    run_stage(main)
