"""Image-to-image tasks derived from a packed dataset: (input, target) pairs or two unpaired domains.

The kinds and their derivations (numpy only: params validation imports this module in every stage);
genlab.data.task_files writes them. A task@<name> stage reads a packed dataset and writes `data/packed/<name>.h5` in the packed layout
plus `inputs` (genlab.data.hdf5): `images` are the targets (domain B), `inputs` the inputs
(domain A). The derivation is named in params (`tasks.<name>`) and stored in the file's `task`
attribute with the source file's md5; the same source and settings give byte-identical files.

Every kind derives a split with the one signature `Derive` (below): it gets the source split's own
inputs where the packed file has them (a paired or two-domain dataset), None otherwise; kinds that
make their inputs ignore them.

Kinds (the registry `TASK_KINDS`, keyed by the `kind:` users write):
- `edges`: Sobel edge maps (black lines on white, as in edges2shoes) -> the image. Paired, or, with
  `paired: false`, two disjoint domains: edges of the even rows, images of the odd rows.
- `super_resolution`: the image averaged over factor x factor blocks -> the image (SRGAN's 4x).
- `inpainting`: the image with a centre square painted white -> the whole image (CCGAN).
- `own`: a paired or two-domain dataset's own inputs and targets as published (facades,
  edges2shoes, apple2orange), so the catalogue's models train on the catalogue's data.
- `blend`: MNIST-M's recipe (Ganin & Lempitsky 2015) on any dataset: each target is
  |image - patch| per channel, the patch cut at random from natural colour photographs (those
  scikit-image ships); unpaired: labelled sources from the even rows, blended odd rows as the
  target domain (PixelDA). Target labels are kept for evaluation only.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from genlab.schema import Field

WHITE = 255

#: derive(images, labels, inputs, input_labels, settings, seed) -> {"inputs", "input_labels", "images",
#: "labels"}: a source split's targets and labels, its own inputs and their labels (None where the
#: packed file has none), the kind's settings and the split's seed; values may be None.
Derive = Callable[[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None, Mapping[str, Any], int],
                  dict[str, np.ndarray | None]]


@dataclass(frozen=True)
class TaskConfig:
    """One entry of `tasks:`: an image-to-image task derived from a dataset (genlab.data.tasks)."""

    name: str
    dataset: str                          # the packed dataset it is derived from
    kind: str                             # a key of genlab.data.tasks.TASK_KINDS
    settings: Mapping[str, Any]           # the kind's validated settings
    paired: bool
    input_shape: tuple[int, int, int]
    image_shape: tuple[int, int, int]     # the targets'
    num_classes: int
    source_labels: bool                   # inputs carry labels (domain adaptation)

    @property
    def description(self) -> str:
        return f"{self.kind} task over {self.dataset} ({'paired' if self.paired else 'unpaired'})"


@dataclass(frozen=True)
class TaskKind:
    """How a kind derives its arrays, and the shapes it gives (for params validation)."""

    name: str
    paired: Callable[[Mapping[str, Any]], bool]
    input_shape: Callable[[Mapping[str, Any], tuple[int, int, int]], tuple[int, int, int]]
    target_shape: Callable[[Mapping[str, Any], tuple[int, int, int]], tuple[int, int, int]]
    problem: Callable[[Mapping[str, Any], tuple[int, int, int]], str | None]
    derive: Derive                # one signature for every kind (see `Derive`)
    fields: Mapping[str, Field]   # the kind's settings under tasks.<name> (validated by genlab.config)
    source_labels: bool = False   # inputs keep their labels (domain adaptation)
    targets_are_source: bool = True  # targets are the dataset's own images (its classifier judges them)
    description: str = ""
    needs_labels: bool = False    # the dataset must be labelled (its labels become the inputs')
    # Derived from the dataset's own inputs (a paired or two-domain dataset as published): params validation
    # requires such a dataset and takes the pairing from it (genlab.data.sources).
    uses_dataset_inputs: bool = False
    provenance: Callable[[], Mapping[str, Any]] = lambda: {}  # what the task file records beyond the settings


TASK_KINDS: dict[str, TaskKind] = {}


def _register(kind: TaskKind) -> None:
    TASK_KINDS[kind.name] = kind


def _same(settings, shape):
    return tuple(shape)


def _no_problem(settings, shape):
    return None


# --------------------------------------------------------------------------- edges
def edge_maps(images: np.ndarray, threshold: float) -> np.ndarray:
    """Sobel gradient magnitude of the grey image, scaled by the largest possible (4 * sqrt(2));
    pixels above `threshold` are edges: black (0) lines on white (255), one channel."""
    grey = images.astype(np.float32).mean(axis=1) / 255.0                      # (N, H, W)
    padded = np.pad(grey, ((0, 0), (1, 1), (1, 1)), mode="edge")
    def shifted(dy, dx):
        return padded[:, 1 + dy:padded.shape[1] - 1 + dy, 1 + dx:padded.shape[2] - 1 + dx]
    gx = (shifted(-1, 1) + 2 * shifted(0, 1) + shifted(1, 1)) - (shifted(-1, -1) + 2 * shifted(0, -1) + shifted(1, -1))
    gy = (shifted(1, -1) + 2 * shifted(1, 0) + shifted(1, 1)) - (shifted(-1, -1) + 2 * shifted(-1, 0) + shifted(-1, 1))
    magnitude = np.sqrt(gx * gx + gy * gy) / (4 * np.sqrt(2.0))
    return np.where(magnitude > threshold, 0, WHITE).astype(np.uint8)[:, None]


def _derive_edges(images, labels, inputs, input_labels, settings, seed):
    edges = edge_maps(images, settings["threshold"])
    if settings["paired"]:
        return {"inputs": edges, "images": images, "labels": labels}
    return _disjoint(edges, None, images, labels)


def _disjoint(inputs, input_labels, images, labels) -> dict[str, np.ndarray | None]:
    """Two unpaired domains from one set: inputs of the even rows, targets of the odd rows."""
    return {"inputs": inputs[0::2], "input_labels": None if input_labels is None else input_labels[0::2],
            "images": images[1::2], "labels": None if labels is None else labels[1::2]}


_register(TaskKind(
    "edges", paired=lambda s: s["paired"], input_shape=lambda s, shape: (1, *shape[1:]), target_shape=_same,
    problem=_no_problem, derive=_derive_edges,
    fields={"paired": Field(bool, True, help="false: two disjoint unpaired domains (CycleGAN, DiscoGAN, DualGAN)"),
            "threshold": Field(float, 0.25, positive=True, below=1.0,
                               help="Sobel magnitude (0..1) above which a pixel is an edge")},
    description="Sobel edges -> image (paired; paired: false gives disjoint domains)"))


# --------------------------------------------------------------------------- super-resolution
def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks, rounded half to even: exact and the same everywhere."""
    n, c, h, w = images.shape
    blocks = images.reshape(n, c, h // factor, factor, w // factor, factor).astype(np.float64)
    return np.rint(blocks.mean(axis=(3, 5))).astype(np.uint8)


def _sr_problem(settings, shape):
    f = settings["factor"]
    if shape[1] % f or shape[2] % f:
        return f"factor {f} does not divide the image side {shape[1]}; allowed: a divisor of {shape[1]} >= 2"
    return None


_register(TaskKind(
    "super_resolution", paired=lambda s: True,
    input_shape=lambda s, shape: (shape[0], shape[1] // s["factor"], shape[2] // s["factor"]),
    target_shape=_same, problem=_sr_problem,
    fields={"factor": Field(int, 4, minimum=2, help="how many times smaller the inputs' side is")},
    derive=lambda images, labels, inputs, input_labels, s, seed: {
        "inputs": downsample(images, s["factor"]), "images": images, "labels": labels},
    description="factor x factor block means -> image (SRGAN)"))


# --------------------------------------------------------------------------- inpainting
def mask_box(side: int, mask: int) -> tuple[int, int]:
    """(first, last + 1) of the centred square mask along each axis."""
    first = (side - mask) // 2
    return first, first + mask


def masked(images: np.ndarray, mask: int) -> np.ndarray:
    out = images.copy()
    lo_y, hi_y = mask_box(images.shape[2], mask)
    lo_x, hi_x = mask_box(images.shape[3], mask)
    out[:, :, lo_y:hi_y, lo_x:hi_x] = WHITE
    return out


def _mask_problem(settings, shape):
    if settings["mask"] >= min(shape[1:]):
        return (f"mask {settings['mask']} is not smaller than the image ({shape[1]}x{shape[2]}); "
                f"allowed: 1 to {min(shape[1:]) - 1}")
    return None


_register(TaskKind(
    "inpainting", paired=lambda s: True, input_shape=_same, target_shape=_same, problem=_mask_problem,
    fields={"mask": Field(int, 14, positive=True, help="side of the centre square to fill (pixels)")},
    derive=lambda images, labels, inputs, input_labels, s, seed: {
        "inputs": masked(images, s["mask"]), "images": images, "labels": labels},
    description="image with a white centre square -> image (CCGAN)"))


# --------------------------------------------------------------------------- MNIST-M-style blend
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # natural colour photographs in scikit-image


def photographs() -> tuple[list[np.ndarray], dict[str, str]]:
    """scikit-image's colour photographs (H, W, 3) uint8, and the sha256 of each (recorded)."""
    import skimage.data

    photos = [np.ascontiguousarray(getattr(skimage.data, name)()) for name in PHOTOS]
    return photos, {name: hashlib.sha256(p.tobytes()).hexdigest() for name, p in zip(PHOTOS, photos)}


def blend(images: np.ndarray, seed: int) -> np.ndarray:
    """|image - patch| per channel, one random photo patch of the image's size per image."""
    photos, _ = photographs()
    n, _, h, w = images.shape
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(photos), n)
    grey = images.astype(np.int16).mean(axis=1, keepdims=True).round().astype(np.int16)   # (n, 1, h, w)
    out = np.empty((n, 3, h, w), np.uint8)
    for k, photo in enumerate(photos):  # vectorised per photo: gather every patch cut from it at once
        rows = np.nonzero(which == k)[0]
        ys = rng.integers(0, photo.shape[0] - h + 1, len(rows))
        xs = rng.integers(0, photo.shape[1] - w + 1, len(rows))
        yy = ys[:, None, None] + np.arange(h)[None, :, None]
        xx = xs[:, None, None] + np.arange(w)[None, None, :]
        patches = photo[yy, xx].transpose(0, 3, 1, 2).astype(np.int16)                      # (r, 3, h, w)
        out[rows] = np.abs(patches - grey[rows]).astype(np.uint8)
    return out


def _derive_blend(images, labels, inputs, input_labels, settings, seed):
    return _disjoint(images, labels, blend(images, seed), labels)


_register(TaskKind(
    "blend", paired=lambda s: False, input_shape=_same, target_shape=lambda s, shape: (3, *shape[1:]),
    problem=_no_problem, derive=_derive_blend, source_labels=True, targets_are_source=False, needs_labels=True,
    provenance=lambda: {"photographs_sha256": photographs()[1]},
    fields={"seed": Field(int, 0, minimum=0, help="seed of the photo patches' choice and position")},
    description="labelled images -> |image - photo patch| in colour, unpaired (MNIST-M, PixelDA)"))


# --------------------------------------------------------------------------- a dataset's own pairs
def own_arrays(images, labels, inputs, input_labels, settings, seed):
    """The split as published: its own inputs and targets, with their labels."""
    if inputs is None:
        raise ValueError("kind own needs a packed dataset with inputs of its own (a paired or two-domain "
                         "dataset); this one has none")
    return {"inputs": inputs, "input_labels": input_labels, "images": images, "labels": labels}


_register(TaskKind(
    "own", paired=lambda s: s["paired"], input_shape=_same, target_shape=_same, problem=_no_problem,
    derive=own_arrays, fields={}, source_labels=True, uses_dataset_inputs=True,
    description="the dataset's own pairs or two domains, as published (facades, edges2shoes, apple2orange)"))


def to_target_geometry(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """uint8 (n, C', H', W') -> (n, C, H, W): nearest-neighbour resampling to H x W (row i takes source row
    floor(i H' / H), as torch's "nearest": a plain repeat for integer factors), and a grey image
    replicated to C channels. Inputs shown or scored next to targets of another geometry (4x-smaller SR
    inputs, grey PixelDA sources): the identity baseline's output, the source-only classifier's input and
    the input row of a translation grid."""
    channels, height, width = shape
    n, c, h, w = images.shape
    if c != channels and c != 1:
        raise ValueError(f"inputs have {c} channels, targets {channels}; only grey inputs "
                         f"are replicated to the targets' channels")
    rows, cols = np.arange(height) * h // height, np.arange(width) * w // width
    out = images[:, :, rows][:, :, :, cols]
    return np.ascontiguousarray(np.broadcast_to(out, (n, channels, height, width)))
