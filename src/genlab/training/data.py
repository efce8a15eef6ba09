"""Training data: held on the device when it fits, streamed from HDF5 when it does not.

The batches of an epoch are fixed by its *order* (`epoch_order`), a permutation that depends
only on (n, the shuffle generator's state, shuffle_buffer): never on the memory available or
on which loader delivers it. Both loaders yield batch i = rows order[i*B:(i+1)*B], so a run
whose split is held in memory and one that streams it are the same experiment.

- `InMemoryTrainData`: the split as one uint8 tensor on the device, a batch is `images[idx]`
  (no DataLoader, no per-sample Python or PIL work): the fastest path, for splits that fit.
- `StreamingTrainData`: for splits larger than the device budget (CelebA 128x128 is ~10 GB of
  uint8). The order is cut into *windows*, the shortest position ranges that use whole row
  units of the file; each window's units are read as contiguous row slices (so each HDF5
  chunk is decompressed once per epoch when its rows divide block_rows, as in the packed
  files), gathered into the order, and cut into batches. A background thread reads the next
  window while the current one is consumed.

For a full permutation (n <= shuffle_buffer) a window is the whole split; the block shuffle
of larger splits keeps each window to at most `shuffle_buffer` rows of host memory.
"""
from __future__ import annotations

import contextlib
import math
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

BLOCK_ROWS = 1024  # rows per shuffled block: the packed files' chunk rows, so a block is one chunk
PREFETCH_THREAD_NAME = "genlab-prefetch"
_POLL_SECONDS = 0.05  # how often a blocked prefetch thread checks whether its consumer has gone

Batch = tuple[torch.Tensor, torch.Tensor | None]


# --------------------------------------------------------------------------- the order
def epoch_order(n: int, generator: torch.Generator, shuffle_buffer: int,
                block_rows: int = BLOCK_ROWS) -> torch.Tensor:
    """The rows of one epoch, in the order they are trained on (int64, a permutation of range(n)).

    n <= shuffle_buffer: `torch.randperm(n, generator=generator)`, the order of every run made
    before streaming existed (so those runs stay bit-identical).

    Otherwise a block shuffle, so a streaming reader touches few chunks at a time: the rows are
    cut into blocks of `block_rows` consecutive rows (the last one may be shorter), and the
    draws from `generator` are, in this order:
      1. one `randperm` of the blocks;
      2. consecutive permuted blocks grouped into windows of max(1, shuffle_buffer // block_rows)
         blocks; for each window in turn, one `randperm` of its rows.
    """
    if n < 0 or shuffle_buffer < 1 or block_rows < 1:
        raise ValueError(f"epoch_order needs n >= 0, shuffle_buffer >= 1, block_rows >= 1; "
                         f"got n={n}, shuffle_buffer={shuffle_buffer}, block_rows={block_rows}")
    if n <= shuffle_buffer:
        return torch.randperm(n, generator=generator)
    blocks = torch.randperm(math.ceil(n / block_rows), generator=generator)
    per_window = max(1, shuffle_buffer // block_rows)
    shuffled = []
    for first in range(0, len(blocks), per_window):
        rows = torch.cat([_block_rows(int(b), block_rows, n) for b in blocks[first:first + per_window]])
        shuffled.append(rows[torch.randperm(len(rows), generator=generator)])
    return torch.cat(shuffled)


def _block_rows(block: int, block_rows: int, n: int) -> torch.Tensor:
    return torch.arange(block * block_rows, min((block + 1) * block_rows, n))


# --------------------------------------------------------------------------- the interface
class TrainData(ABC):
    """A training split as batches on the training device: same batches for every implementation."""

    in_memory: bool
    input_shape: tuple[int, int, int] | None = None  # an image-to-image task's inputs (TaskTrainData)

    def __init__(self, n: int, image_shape: tuple[int, int, int], labelled: bool, device: torch.device,
                 shuffle_buffer: int, block_rows: int) -> None:
        self.n = n
        self.image_shape = image_shape
        self.labelled = labelled
        self.device = device
        self.shuffle_buffer = shuffle_buffer
        self.block_rows = block_rows

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """This split's next epoch order, with the shuffle_buffer and block_rows it was opened with."""
        return epoch_order(self.n, generator, self.shuffle_buffer, self.block_rows)

    @abstractmethod
    def batches(self, order: torch.Tensor, batch_size: int, steps: int) -> Iterator[Batch]:
        """Yield (images uint8 (B, C, H, W), labels int64 (B,) or None) on the device for rows
        order[i*B:(i+1)*B], i < steps. Close the iterator (or let it be collected) to stop early."""

    @abstractmethod
    def head(self, k: int | None = None) -> Batch:
        """The first k rows (all when k is None) on the device, e.g. to fit the AE's prior after training."""

    def _check(self, order: torch.Tensor, batch_size: int, steps: int) -> None:
        if batch_size < 1 or steps < 0:
            raise ValueError(f"batch_size must be >= 1 and steps >= 0; got {batch_size}, {steps}")
        if steps * batch_size > len(order):
            raise ValueError(f"{steps} batches of {batch_size} need {steps * batch_size} rows; "
                             f"the order has {len(order)}")


@dataclass(frozen=True)
class _SplitFile:
    """Where a split lives and its geometry, read once when the data is opened."""

    path: Path
    split: str
    n: int
    image_shape: tuple[int, int, int]
    labelled: bool
    chunk_rows: int | None  # None: the images are not chunked

    def read(self, group: h5py.Group, runs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows [lo, hi) of each run, concatenated, read straight into one array (no second copy)."""
        total = sum(hi - lo for lo, hi in runs)
        images = np.empty((total, *self.image_shape), dtype=np.uint8)
        labels = np.empty(total, dtype=np.int64) if self.labelled else None
        at = 0
        for lo, hi in runs:
            if hi > lo:
                group["images"].read_direct(images, np.s_[lo:hi], np.s_[at:at + hi - lo])
                if labels is not None:
                    group["labels"].read_direct(labels, np.s_[lo:hi], np.s_[at:at + hi - lo])
            at += hi - lo
        return images, labels


def open_train_data(h5_path: str | Path, *, split: str = "train", limit: int | None = None,
                    device: torch.device | str, memory_budget_bytes: int, shuffle_buffer: int,
                    block_rows: int = BLOCK_ROWS) -> TrainData:
    """The split (its first `limit` rows if given) held on `device` when its images and labels fit in
    `memory_budget_bytes`, else streamed from the file. Either way the batches are the same.

    `block_rows` must be the one the epoch orders are made with (`TrainData.epoch_order` does
    that): it bounds the host memory a streamed window takes, and never changes the batches.
    """
    with h5py.File(h5_path, "r") as f:
        task = split in f and "inputs" in f[split]
    if task:
        return TaskTrainData(Path(h5_path), split, limit, torch.device(device), memory_budget_bytes, shuffle_buffer,
                             block_rows)
    source = _probe(Path(h5_path), split, limit)
    c, h, w = source.image_shape
    size = source.n * (c * h * w + (8 if source.labelled else 0))
    kind = InMemoryTrainData if size <= memory_budget_bytes else StreamingTrainData
    return kind(source, torch.device(device), shuffle_buffer, block_rows)


def epoch_rows(h5_path: str | Path, *, split: str = "train", limit: int | None = None) -> int:
    """The rows an epoch draws from, as open_train_data counts them (its TrainData.n), read from the
    file's shapes alone: the split's first `limit` rows; for an unpaired task, the smaller domain's."""
    with h5py.File(h5_path, "r") as f:
        return _epoch_rows(f, split, limit)


def _epoch_rows(f: h5py.File, split: str, limit: int | None) -> int:
    group = f[split]

    def taken(dataset: str) -> int:
        rows = group[dataset].shape[0]
        return rows if limit is None else min(limit, rows)

    if "inputs" not in group:
        return taken("images")
    return taken("inputs") if bool(f.attrs["paired"]) else min(taken("inputs"), taken("images"))


def _probe(path: Path, split: str, limit: int | None) -> _SplitFile:
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    with h5py.File(path, "r") as f:
        if split not in f:
            raise ValueError(f"{path}: split {split!r} missing; present: {', '.join(sorted(f))}")
        images = f[split]["images"]
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"{path}: /{split}/images must be uint8 (N, C, H, W); "
                             f"got {images.dtype} {images.shape}")
        n = _epoch_rows(f, split, limit)
        if n == 0:
            raise ValueError(f"{path}: /{split}/images holds no rows")
        chunk_rows = images.chunks[0] if images.chunks else None
        return _SplitFile(path, split, n, tuple(images.shape[1:]), "labels" in f[split], chunk_rows)


# --------------------------------------------------------------------------- in memory
class InMemoryTrainData(TrainData):
    """The split as one uint8 tensor on the device; a batch is an index into it."""

    in_memory = True

    def __init__(self, source: _SplitFile, device: torch.device, shuffle_buffer: int, block_rows: int) -> None:
        super().__init__(source.n, source.image_shape, source.labelled, device, shuffle_buffer, block_rows)
        with h5py.File(source.path, "r") as f:
            images, labels = source.read(f[source.split], [(0, source.n)])
        self.images, self.labels = _arrays_to_device(images, labels, device)

    def batches(self, order: torch.Tensor, batch_size: int, steps: int) -> Iterator[Batch]:
        self._check(order, batch_size, steps)
        return self._batches(order.to(self.device), batch_size, steps)

    def _batches(self, order: torch.Tensor, batch_size: int, steps: int) -> Iterator[Batch]:
        for i in range(steps):
            idx = order[i * batch_size:(i + 1) * batch_size]
            yield self.images[idx], None if self.labels is None else self.labels[idx]

    def head(self, k: int | None = None) -> Batch:
        rows = slice(0, _head_rows(k, self.n))
        return self.images[rows], None if self.labels is None else self.labels[rows]


def _arrays_to_device(images: np.ndarray, labels: np.ndarray | None, device: torch.device) -> Batch:
    return torch.from_numpy(images).to(device), None if labels is None else torch.from_numpy(labels).to(device)


def _head_rows(k: int | None, n: int) -> int:
    if k is not None and k < 0:
        raise ValueError(f"head(k) needs k >= 0 or None, got {k}")
    return n if k is None else min(k, n)


# --------------------------------------------------------------------------- image-to-image tasks
class TaskTrainData(TrainData):
    """A task's split (genlab.data.tasks) on the device: batches are ((inputs, targets), input labels).

    Paired tasks index both with one order, so row i of the inputs meets row i of the targets.
    Unpaired tasks draw the targets' order separately, right after the inputs' (same generator):
    each domain is seen once per epoch in its own random order. Inputs' labels (PixelDA's source
    labels) come with the inputs; the targets' labels are never given to training."""

    in_memory = True

    def __init__(self, path: Path, split: str, limit: int | None, device: torch.device, memory_budget_bytes: int,
                 shuffle_buffer: int, block_rows: int) -> None:
        rows = slice(None) if limit is None else slice(0, limit)
        with h5py.File(path, "r") as f:
            group = f[split]
            inputs, images = group["inputs"][rows], group["images"][rows]
            input_labels = group["input_labels"][rows] if "input_labels" in group else None
            self.paired = bool(f.attrs["paired"])
            n = _epoch_rows(f, split, limit)
        size = inputs.nbytes + images.nbytes
        if size > memory_budget_bytes:
            raise ValueError(f"{path}: the task's {split} split takes {size >> 20} MiB, more than "
                             f"data.memory_budget_mb ({memory_budget_bytes >> 20}); image-to-image tasks are held "
                             f"on the device: raise data.memory_budget_mb or set data.train_limit")
        super().__init__(n, tuple(images.shape[1:]), input_labels is not None, device, shuffle_buffer, block_rows)
        self.input_shape = tuple(inputs.shape[1:])
        self.inputs, self.input_labels = _arrays_to_device(inputs, input_labels, device)
        self.images = torch.from_numpy(images).to(device)

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """Paired: one order of the rows; unpaired: (2, n) rows, the inputs' order and the targets'."""
        if self.paired:
            return epoch_order(self.n, generator, self.shuffle_buffer, self.block_rows)
        return torch.stack([epoch_order(len(self.inputs), generator, self.shuffle_buffer, self.block_rows)[:self.n],
                            epoch_order(len(self.images), generator, self.shuffle_buffer, self.block_rows)[:self.n]])

    def batches(self, order: torch.Tensor, batch_size: int, steps: int) -> Iterator:
        order = order if order.dim() == 2 else order.expand(2, -1)
        self._check(order[0], batch_size, steps)
        order = order.to(self.device)
        for i in range(steps):
            idx = order[:, i * batch_size:(i + 1) * batch_size]
            labels = None if self.input_labels is None else self.input_labels[idx[0]]
            yield (self.inputs[idx[0]], self.images[idx[1]]), labels

    def head(self, k: int | None = None):
        rows = slice(0, _head_rows(k, self.n))
        return (self.inputs[rows], self.images[rows]), None if self.input_labels is None else self.input_labels[rows]


# --------------------------------------------------------------------------- streaming
class StreamingTrainData(TrainData):
    """The split read from its HDF5 file window by window, a background thread reading ahead."""

    in_memory = False

    def __init__(self, source: _SplitFile, device: torch.device, shuffle_buffer: int, block_rows: int) -> None:
        super().__init__(source.n, source.image_shape, source.labelled, device, shuffle_buffer, block_rows)
        self.source = source
        # Units divide a block, so streamed windows stay within the block shuffle's windows, and
        # a chunk, so a chunk whose rows divide a block (one unit, then) is read by one window.
        self.unit_rows = block_rows if source.chunk_rows is None else math.gcd(source.chunk_rows, block_rows)
        self.window_rows = max(1, shuffle_buffer // block_rows) * block_rows  # a block shuffle's window

    def batches(self, order: torch.Tensor, batch_size: int, steps: int) -> Iterator[Batch]:
        self._check(order, batch_size, steps)
        needed = order[:steps * batch_size].cpu()
        return self._batches(needed, batch_size)

    def _batches(self, rows: torch.Tensor, batch_size: int) -> Iterator[Batch]:
        """Cut the windows a background thread reads into batches; stop the thread however this ends."""
        prefetch = _Prefetch(self._windows(rows))
        try:
            yield from _rebatch(prefetch, batch_size, self.device)
        finally:
            prefetch.stop()

    def _windows(self, rows: torch.Tensor) -> Generator[Batch, None, None]:
        """The host images (and labels) of `rows`, in that order, one window at a time."""
        with h5py.File(self.source.path, "r") as f:
            group = f[self.source.split]
            for start, end in windows(rows, self.unit_rows, self.window_rows):
                yield self._read_window(group, rows[start:end])

    def head(self, k: int | None = None) -> Batch:
        with h5py.File(self.source.path, "r") as f:
            images, labels = self.source.read(f[self.source.split], [(0, _head_rows(k, self.n))])
        return _arrays_to_device(images, labels, self.device)

    def _read_window(self, group: h5py.Group, rows: torch.Tensor) -> Batch:
        """The images (and labels) of `rows`, in that order, as host tensors (pinned for CUDA).

        The units the rows fall in are read as runs of contiguous row slices, then the rows are
        gathered from them: HDF5 decompresses each chunk of a slice once, whatever the order."""
        units = torch.unique(torch.div(rows, self.unit_rows, rounding_mode="floor"))
        local = torch.searchsorted(units, rows // self.unit_rows) * self.unit_rows + rows % self.unit_rows
        images, labels = self.source.read(group, list(_runs(units.tolist(), self.unit_rows, self.n)))
        pin = self.device.type == "cuda"
        return _gather(images, local, pin), None if labels is None else _gather(labels, local, pin)


def _runs(units: list[int], unit_rows: int, n: int) -> Iterator[tuple[int, int]]:
    """Row ranges [lo, hi) of the runs of consecutive unit ids in sorted `units`."""
    start = prev = units[0]
    for u in units[1:] + [None]:
        if u != prev + 1:
            yield start * unit_rows, min((prev + 1) * unit_rows, n)
            start = u
        prev = u


def windows(rows: torch.Tensor, unit_rows: int, max_rows: int) -> list[tuple[int, int]]:
    """Cut the positions of `rows` into ranges [start, end) that never share a unit with each
    other, so each unit is read once: the shortest such ranges, joined while the joined range
    stays within `max_rows` (a single range that exceeds it stays whole: a full permutation is
    one range). Joining keeps reads large when the shortest ranges are small (e.g. a sequential
    order cuts into single units)."""
    if len(rows) == 0:
        return []
    units = torch.div(rows, unit_rows, rounding_mode="floor")
    positions = torch.arange(len(rows))
    last = torch.zeros(int(units.max()) + 1, dtype=torch.int64).scatter_reduce_(
        0, units, positions, "amax", include_self=False)
    # A range may end after position q when no unit seen so far has rows after q.
    ends = ((torch.cummax(last[units], 0).values == positions).nonzero().flatten() + 1).tolist()
    cuts, start, joined_end = [], 0, 0
    for end in ends:
        if end - start > max_rows and joined_end > start:
            cuts.append((start, joined_end))
            start = joined_end
        joined_end = end
    return cuts + [(start, joined_end)]


def _gather(array: np.ndarray, local: torch.Tensor, pin: bool) -> torch.Tensor:
    """array[local] as a tensor; gathered straight into pinned memory when it will go to CUDA."""
    out = torch.empty((len(local), *array.shape[1:]), dtype=torch.from_numpy(array).dtype, pin_memory=pin)
    np.take(array, local.numpy(), axis=0, out=out.numpy(), mode="clip")  # "raise" would buffer `out`: 10x slower
    return out


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t.to(device, non_blocking=t.is_pinned())


def _rebatch(parts: Iterable[Batch], batch_size: int, device: torch.device) -> Iterator[Batch]:
    """Full batches of `batch_size` rows on the device from host windows of any size.

    A batch that straddles two windows is joined on the device from its two pieces."""
    pending: list[Batch] = []
    filled = 0
    for images, labels in parts:
        pos = 0
        while pos < len(images):
            take = min(batch_size - filled, len(images) - pos)
            piece = slice(pos, pos + take)
            pending.append((_to_device(images[piece], device),
                            None if labels is None else _to_device(labels[piece], device)))
            filled, pos = filled + take, pos + take
            if filled == batch_size:
                yield _join(pending)
                pending, filled = [], 0


def _join(pieces: list[Batch]) -> Batch:
    if len(pieces) == 1:
        return pieces[0]
    images = torch.cat([p[0] for p in pieces])
    return images, None if pieces[0][1] is None else torch.cat([p[1] for p in pieces])


# --------------------------------------------------------------------------- the reading thread
@dataclass
class _Failure:
    """An exception raised in the prefetch thread, handed to the consumer to re-raise."""

    error: BaseException


_END = object()


class _Prefetch:
    """Iterates over `source` while a background thread runs it one item ahead.

    The queue holds one finished item, so about four windows' rows are in host memory at most:
    the one being cut into batches, the one queued, and the one being read (its rows as read
    from the file, and gathered into the order). h5py releases the GIL while
    HDF5 reads and decompresses, so the reading overlaps the training step."""

    def __init__(self, source: Generator[Batch, None, None]) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name=PREFETCH_THREAD_NAME, daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[Batch]:
        while (item := self._queue.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def stop(self) -> None:
        """Tell the thread to stop, and wait for it: it notices at once when waiting on the full
        queue, else when the item it is reading is done."""
        self._stopping.set()
        self._thread.join()

    def _run(self, source: Generator[Batch, None, None]) -> None:
        try:
            with contextlib.closing(source):  # closes the file when stopped early
                for item in source:
                    if not self._put(item):
                        return
            self._put(_END)
        except BaseException as error:  # handed over: the consumer re-raises it
            self._put(_Failure(error))

    def _put(self, item: object) -> bool:
        """Queue `item` unless the consumer has gone; False when it has."""
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False
