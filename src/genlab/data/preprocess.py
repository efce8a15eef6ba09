"""Turn raw images into the packed CHW uint8 arrays, deterministically, two images at a time.

Every step is PIL's, with the pinned Pillow: JPEG decoding without draft mode (draft mode lets
libjpeg scale while decoding, which trades exactness for speed), `convert` to the dataset's mode,
a centre crop, and `resize` with the named filter. PIL releases the GIL while decoding and
resizing, and h5py while compressing, so two worker threads decode while the caller writes the
previous block; each image is independent, so the output is the same whatever the scheduling.
"""
from __future__ import annotations

import collections
import functools
import io
import itertools
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import PIL
from PIL import Image
from tqdm import tqdm

from genlab.data.sources import RESAMPLE_FILTERS, Preprocessing
from genlab.errors import GenlabError

WORKERS = 2
MAX_PIXELS = 1 << 24  # 16.8 M pixels: far above any registered dataset's images, far below a memory bomb
_MODES = {1: "L", 3: "RGB"}



@dataclass(frozen=True)
class Half:
    """One half of an encoded image that holds a pair side by side (pix2pix's A | B, each half square)."""

    data: bytes
    index: int  # 0: the left half, 1: the right half


Payload = bytes | np.ndarray | Half  # an encoded image file, an HW / HWC uint8 array, or half of an encoded pair


class PreprocessingError(GenlabError):
    """An image that cannot be turned into the packed form, or preprocessing settings that make no sense."""


@dataclass
class PrepareStats:
    """What preprocessing met: the distinct source shapes (H, W, C) and whether any file was decoded."""

    source_shapes: set[tuple[int, int, int]] = field(default_factory=set)
    decoded: bool = False

    def as_attrs(self, prep: Preprocessing, channels: int) -> dict:
        """What was actually done, for the packed file's `preprocessing` attribute."""
        shapes = sorted(self.source_shapes)
        pil_used = self.decoded or not all(is_identity(shape, prep, channels) for shape in shapes)
        return {
            **prep.as_attrs(),
            "channels": channels,
            "source_shapes": [list(shape) for shape in shapes],
            "cropped": prep.crop is not None,
            "resized": any(_size_after_crop(shape[:2], prep) != (prep.side, prep.side) for shape in shapes),
            "pillow": PIL.__version__ if pil_used else None,
        }


def check_preprocessing(prep: Preprocessing) -> None:
    """Refuse settings that cannot be applied, before any image is read."""
    if prep.side < 1 or (prep.crop is not None and prep.crop < 1):
        raise PreprocessingError(f"side and crop must be positive, got side={prep.side}, crop={prep.crop}")
    if prep.resample not in RESAMPLE_FILTERS:
        raise PreprocessingError(f"unknown resample filter {prep.resample!r}; known: {', '.join(RESAMPLE_FILTERS)}")


def decode_image(data: bytes, name: str) -> Image.Image:
    """Decode an image file fully (no draft mode), refusing oversized or damaged ones by name."""
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise PreprocessingError(f"{name}: {width}x{height} pixels exceeds the limit of {MAX_PIXELS}")
        image.load()
    except (OSError, Image.DecompressionBombError) as exc:  # UnidentifiedImageError is an OSError
        raise PreprocessingError(f"{name}: cannot decode image ({exc}); the raw file may be damaged: "
                                 f"delete it and re-run the download stage") from exc
    return image


def half_of(image: Image.Image, index: int, name: str) -> Image.Image:
    """The left (0) or right (1) square of a side-by-side pair; anything but two squares is refused."""
    width, height = image.size
    if width != 2 * height:
        raise PreprocessingError(f"{name}: {width}x{height} image is not a pair of squares side by side "
                                 f"(A | B, width twice the height); the raw file may be damaged or of "
                                 f"another dataset")
    return image.crop((index * height, 0, (index + 1) * height, height))


def is_identity(shape: tuple[int, ...], prep: Preprocessing, channels: int) -> bool:
    """Whether an image of `shape` (H, W, C) is already in packed form: nothing to crop, resize or convert."""
    height, width, source_channels = shape
    return prep.crop is None and (height, width) == (prep.side, prep.side) and source_channels == channels


def prepare(image: Image.Image | np.ndarray, prep: Preprocessing, *, channels: int,
            name: str = "image") -> np.ndarray:
    """One image as packed: `channels` x side x side uint8, centre-cropped and resized as `prep` says.

    `image` is a PIL image or an HW / HWC uint8 array. The crop offset rounds as torchvision's
    CenterCrop does, so a crop matches the seeds' transforms pixel for pixel.
    """
    if isinstance(image, np.ndarray):
        array = image if image.ndim == 3 else image[:, :, None]
        if is_identity(array.shape, prep, channels):
            return np.ascontiguousarray(array.transpose(2, 0, 1))
        image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    image = image.convert(_MODES[channels])
    if prep.crop is not None:
        image = _centre_crop(image, prep.crop, name)
    if image.size != (prep.side, prep.side):
        image = image.resize((prep.side, prep.side), resample=Image.Resampling[prep.resample.upper()])
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def prepare_blocks(images: Iterable[tuple[str, Payload]], count: int, prep: Preprocessing, *,
                   channels: int, rows: int, stats: PrepareStats,
                   desc: str) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first row, block) of the packed images, `rows` at a time, in input order.

    Two preallocated blocks alternate: while the caller writes one out (h5py compresses without
    the GIL), the workers fill the other. A block is reused once the caller asks for the next.
    Each block is split into one contiguous run of images per worker thread, so the pool costs
    one task per worker per block, not one per image. `images` must hold `count` items.
    """
    blocks = [np.empty((rows, channels, prep.side, prep.side), dtype=np.uint8) for _ in range(2)]
    submitted = 0
    pending: collections.deque[_Job] = collections.deque()
    with ThreadPoolExecutor(WORKERS) as pool, tqdm(total=count, unit="img", desc=desc, file=sys.stderr,
                                                    dynamic_ncols=True) as bar:
        for k, batch in enumerate(_batched(images, rows)):
            if submitted + len(batch) > count:
                raise ValueError(f"{desc}: more than the expected {count} images")
            block = blocks[k % 2][:len(batch)]
            fill = functools.partial(_fill, block, batch, prep=prep, channels=channels)
            pending.append(_Job(submitted, block, [pool.submit(fill, run) for run in _runs(len(batch), WORKERS)]))
            submitted += len(batch)
            if len(pending) == 2:
                yield pending.popleft().collect(stats, bar)
        while pending:
            yield pending.popleft().collect(stats, bar)
    if submitted != count:
        raise ValueError(f"{desc}: expected {count} images, got {submitted}")


@dataclass(frozen=True)
class _Job:
    """One block being filled by the workers, from row `start` on."""

    start: int
    block: np.ndarray
    runs: list[Future[tuple[set[tuple[int, int, int]], bool]]]

    def collect(self, stats: PrepareStats, bar: tqdm) -> tuple[int, np.ndarray]:
        """Wait for the workers (re-raising their errors), record what they met, hand out the block."""
        for future in self.runs:
            shapes, decoded = future.result()
            stats.source_shapes |= shapes
            stats.decoded |= decoded
        bar.update(len(self.block))
        return self.start, self.block


def _fill(block: np.ndarray, batch: list[tuple[str, Payload]], run: range, *, prep: Preprocessing,
          channels: int) -> tuple[set[tuple[int, int, int]], bool]:
    """Prepare batch[run] into block[run]; return the source shapes met and whether a file was decoded."""
    shapes: set[tuple[int, int, int]] = set()
    decoded = False
    for i in run:
        name, payload = batch[i]
        if isinstance(payload, (bytes, Half)):
            image: Image.Image | np.ndarray = decode_image(payload if isinstance(payload, bytes) else payload.data, name)
            if isinstance(payload, Half):
                image = half_of(image, payload.index, name)
            shapes.add((image.height, image.width, len(image.getbands())))
            decoded = True
        else:
            image = payload
            shapes.add((*payload.shape[:2], payload.shape[2] if payload.ndim == 3 else 1))
        block[i] = prepare(image, prep, channels=channels, name=name)
    return shapes, decoded


def _centre_crop(image: Image.Image, crop: int, name: str) -> Image.Image:
    width, height = image.size
    if crop > width or crop > height:
        raise PreprocessingError(f"{name}: {width}x{height} image is smaller than the {crop}x{crop} centre crop")
    left, top = int(round((width - crop) / 2.0)), int(round((height - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


def _size_after_crop(size: tuple[int, int], prep: Preprocessing) -> tuple[int, int]:
    return (prep.crop, prep.crop) if prep.crop is not None else size


def _batched(items: Iterable[tuple[str, Payload]], n: int) -> Iterator[list[tuple[str, Payload]]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, n)):
        yield batch


def _runs(n: int, parts: int) -> list[range]:
    """`range(n)` cut into `parts` contiguous runs of near-equal length (empty ones dropped)."""
    bounds = [n * k // parts for k in range(parts + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
