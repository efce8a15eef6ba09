"""The training data loaders: the epoch order, and the same batches whether held in memory or streamed."""
import contextlib
import math
import threading

import h5py
import numpy as np
import pytest
import torch

from genlab.training.data import (PREFETCH_THREAD_NAME, InMemoryTrainData, StreamingTrainData, epoch_order,
                                  open_train_data, windows)

N = 10_000  # not a multiple of the 1024-row blocks: the last block is partial
SHAPE = (1, 4, 3)  # not square, so a swapped height/width is caught
BUFFER = 2048  # two blocks per shuffle window
CPU = torch.device("cpu")
DEVICES = [CPU] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def write_split(path, n=N, shape=SHAPE, labelled=True, chunk_rows=256, seed=0):
    """A packed file in the pipeline's layout (/train and /test, gzip + shuffle; chunk_rows None:
    contiguous, uncompressed); returns its train arrays."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.int64)
    with h5py.File(path, "w") as f:
        for split, rows in (("train", n), ("test", min(100, n))):
            group = f.create_group(split)
            packing = {} if chunk_rows is None else {"compression": "gzip", "shuffle": True}
            group.create_dataset("images", data=images[:rows], **packing,
                                 chunks=None if chunk_rows is None else (min(chunk_rows, rows), *shape))
            if labelled:
                group.create_dataset("labels", data=labels[:rows], **packing,
                                     chunks=None if chunk_rows is None else (min(chunk_rows, rows),))
    return torch.from_numpy(images), torch.from_numpy(labels) if labelled else None


def both(path, device=CPU, **kwargs):
    """The same split opened in memory and streaming."""
    options = {"device": device, "shuffle_buffer": BUFFER, **kwargs}
    return (open_train_data(path, memory_budget_bytes=1 << 40, **options),
            open_train_data(path, memory_budget_bytes=0, **options))


def collect(data, order, batch_size, steps):
    with contextlib.closing(data.batches(order, batch_size, steps)) as it:
        return list(it)


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == PREFETCH_THREAD_NAME and t.is_alive()]


def assert_same_batches(data, images, labels, order, batch_size, steps):
    batches = collect(data, order, batch_size, steps)
    assert len(batches) == steps
    for i, (x, y) in enumerate(batches):
        idx = order[i * batch_size:(i + 1) * batch_size]
        assert x.device.type == data.device.type and x.dtype == torch.uint8 and x.shape == (batch_size, *SHAPE)
        assert torch.equal(x.cpu(), images[idx])
        if labels is None:
            assert y is None
        else:
            assert y.dtype == torch.int64 and torch.equal(y.cpu(), labels[idx])


# --------------------------------------------------------------------------- epoch_order
@pytest.mark.parametrize("n,buffer,block", [(0, 8, 4), (1, 8, 4), (100, 100, 16), (101, 100, 16),
                                            (1000, 64, 16), (1000, 10, 16), (4096, 1024, 1024)])
def test_epoch_order_is_a_permutation(n, buffer, block):
    order = epoch_order(n, torch.Generator().manual_seed(3), buffer, block)
    assert order.dtype == torch.int64
    assert torch.equal(order.sort().values, torch.arange(n))


@pytest.mark.parametrize("n", [1, 60_000, 65_536])
def test_epoch_order_is_randperm_when_the_split_fits_the_buffer(n):
    order = epoch_order(n, torch.Generator().manual_seed(0), 65_536)
    assert torch.equal(order, torch.randperm(n, generator=torch.Generator().manual_seed(0)))


def test_epoch_order_depends_only_on_the_seed():
    def order(seed):
        return epoch_order(N, torch.Generator().manual_seed(seed), BUFFER)

    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))
    gen = torch.Generator().manual_seed(1)  # successive epochs draw different orders from one generator
    assert not torch.equal(epoch_order(N, gen, BUFFER), epoch_order(N, gen, BUFFER))


@pytest.mark.parametrize("n,buffer,block", [(N, BUFFER, 1024), (1000, 64, 16), (1000, 10, 16)])
def test_epoch_order_windows_hold_the_rows_of_their_blocks(n, buffer, block):
    """Replays the documented draws: the block permutation first, then each window's rows."""
    order = epoch_order(n, torch.Generator().manual_seed(5), buffer, block)
    blocks = torch.randperm(math.ceil(n / block), generator=torch.Generator().manual_seed(5))
    per_window = max(1, buffer // block)
    pos = 0
    for first in range(0, len(blocks), per_window):
        rows = {r for b in blocks[first:first + per_window].tolist() for r in range(b * block, min((b + 1) * block, n))}
        assert set(order[pos:pos + len(rows)].tolist()) == rows
        pos += len(rows)
    assert pos == n


@pytest.mark.parametrize("order", [epoch_order(N, torch.Generator().manual_seed(0), BUFFER), torch.arange(N)])
def test_streaming_windows_cover_the_order_within_the_shuffle_window(order):
    cuts = windows(order, 4, BUFFER)
    assert cuts[0][0] == 0 and cuts[-1][1] == N
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))
    assert max(end - start for start, end in cuts) <= BUFFER
    units = [set((order[a:b] // 4).tolist()) for a, b in cuts]
    assert sum(map(len, units)) == len(set().union(*units))  # no unit is read by two windows
    if torch.equal(order, torch.arange(N)):
        assert len(cuts) == math.ceil(N / BUFFER)  # small ranges are joined into large reads
    assert windows(torch.randperm(N), 256, BUFFER) == [(0, N)]  # a full permutation is one window


# --------------------------------------------------------------------------- same batches
@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("batch_size", [64, 100, 2047, 3000])  # 100, 2047, 3000: batches straddle windows
def test_streaming_equals_in_memory_over_a_whole_epoch(tmp_path, batch_size, device):
    images, labels = write_split(tmp_path / "d.h5")
    memory, stream = both(tmp_path / "d.h5", device=device)
    assert memory.in_memory and not stream.in_memory
    order = memory.epoch_order(torch.Generator().manual_seed(0))
    assert torch.equal(order, stream.epoch_order(torch.Generator().manual_seed(0)))
    steps = N // batch_size
    for data in (memory, stream):
        assert_same_batches(data, images, labels, order, batch_size, steps)


@pytest.mark.parametrize("limit", [1, 300, 5000, 5121, N + 7])  # 5121: a partial last block and window
def test_streaming_equals_in_memory_with_a_limit(tmp_path, limit):
    images, labels = write_split(tmp_path / "d.h5")
    n = min(limit, N)
    memory, stream = both(tmp_path / "d.h5", limit=limit)
    assert memory.n == stream.n == n
    order = epoch_order(n, torch.Generator().manual_seed(1), BUFFER)
    batch_size = min(64, n)
    for data in (memory, stream):
        assert_same_batches(data, images[:n], labels[:n], order, batch_size, n // batch_size)


def test_streaming_equals_in_memory_for_an_unlabelled_file_and_a_short_epoch(tmp_path):
    images, _ = write_split(tmp_path / "faces.h5", labelled=False)
    memory, stream = both(tmp_path / "faces.h5")
    assert not memory.labelled and not stream.labelled
    order = epoch_order(N, torch.Generator().manual_seed(2), BUFFER)
    for data in (memory, stream):
        assert_same_batches(data, images, None, order, 64, 40)  # steps_per_epoch shorter than the epoch


@pytest.mark.parametrize("chunk_rows", [300, None])  # chunks that do not divide a block; no chunks
@pytest.mark.parametrize("order", [torch.arange(N), torch.arange(N).flip(0),
                                   torch.randperm(N, generator=torch.Generator().manual_seed(4))])
def test_streaming_delivers_any_order(tmp_path, order, chunk_rows):
    images, labels = write_split(tmp_path / "d.h5", chunk_rows=chunk_rows)
    _, stream = both(tmp_path / "d.h5")
    assert_same_batches(stream, images, labels, order, 128, N // 128)


def test_head_is_the_first_rows_for_both(tmp_path):
    images, labels = write_split(tmp_path / "d.h5")
    for data in both(tmp_path / "d.h5", limit=5000):
        for k, rows in ((None, 5000), (0, 0), (37, 37), (9000, 5000)):
            x, y = data.head(k)
            assert torch.equal(x, images[:rows]) and torch.equal(y, labels[:rows])


def test_open_train_data_picks_by_budget(tmp_path):
    write_split(tmp_path / "d.h5")
    write_split(tmp_path / "faces.h5", labelled=False)
    row = math.prod(SHAPE)
    for path, size in ((tmp_path / "d.h5", N * (row + 8)), (tmp_path / "faces.h5", N * row)):
        common = {"device": CPU, "shuffle_buffer": BUFFER}
        assert isinstance(open_train_data(path, memory_budget_bytes=size, **common), InMemoryTrainData)
        assert isinstance(open_train_data(path, memory_budget_bytes=size - 1, **common), StreamingTrainData)
    limited = open_train_data(tmp_path / "d.h5", limit=100, memory_budget_bytes=100 * (row + 8), device=CPU,
                              shuffle_buffer=BUFFER)
    assert limited.in_memory and limited.image_shape == SHAPE and limited.labelled


def test_open_train_data_rejects_bad_requests(tmp_path):
    write_split(tmp_path / "d.h5")
    with pytest.raises(ValueError, match="split 'valid' missing"):
        open_train_data(tmp_path / "d.h5", split="valid", device=CPU, memory_budget_bytes=0, shuffle_buffer=BUFFER)
    for data in both(tmp_path / "d.h5"):
        with pytest.raises(ValueError, match="need"):
            data.batches(torch.arange(N), 64, N // 64 + 1)


# --------------------------------------------------------------------------- the reading thread
def corrupt_chunk_of(path, row):
    """Overwrite the middle of the compressed chunk holding `row` of /train/images."""
    with h5py.File(path, "r") as f:
        info = f["train"]["images"].id.get_chunk_info_by_coord((row, 0, 0, 0))
    with open(path, "r+b") as raw:
        raw.seek(info.byte_offset + info.size // 4)
        raw.write(b"\xff" * (info.size // 2))


def test_a_failing_read_is_raised_in_the_consumer_and_unneeded_windows_are_not_read(tmp_path):
    write_split(tmp_path / "d.h5")
    _, stream = both(tmp_path / "d.h5")
    order = stream.epoch_order(torch.Generator().manual_seed(0))
    last_window_start = windows(order, 1024, BUFFER)[-1][0]
    corrupt_chunk_of(tmp_path / "d.h5", int(order[-1]))

    delivered = []
    with pytest.raises(OSError):
        for batch in stream.batches(order, 64, N // 64):
            delivered.append(batch)
    assert 0 < len(delivered) * 64 <= last_window_start
    assert not prefetch_threads()
    # An epoch cut short before the last window never reads the corrupt chunk.
    assert len(collect(stream, order, 64, last_window_start // 64)) == last_window_start // 64


def test_stopping_early_leaves_no_thread(tmp_path):
    write_split(tmp_path / "d.h5")
    _, stream = both(tmp_path / "d.h5", shuffle_buffer=1024)  # many windows: the thread waits on a full queue
    order = stream.epoch_order(torch.Generator().manual_seed(0))
    steps = N // 16

    it = stream.batches(order, 16, steps)
    next(it)
    assert prefetch_threads()
    it.close()
    assert not prefetch_threads()

    for _ in stream.batches(order, 16, steps):
        break
    assert not prefetch_threads()

    with pytest.raises(RuntimeError, match="training step failed"):
        for _ in stream.batches(order, 16, steps):
            raise RuntimeError("training step failed")
    assert not prefetch_threads()

    stream.batches(order, 16, steps)  # never iterated: no thread started
    assert len(collect(stream, order, 16, steps)) == steps
    assert not prefetch_threads()
