import gzip
import struct

import numpy as np
import pytest

from genlab.data.idx import encode_idx, read_idx


def idx_bytes(array: np.ndarray, code: int, be_dtype: str) -> bytes:
    """An IDX file built by hand, independent of genlab's writer."""
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(be_dtype).tobytes()


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(7, 5, 4), dtype=np.uint8)


def test_round_trip_images_and_labels(tmp_path, images):
    labels = np.arange(7, dtype=np.uint8) % 3
    (tmp_path / "img").write_bytes(idx_bytes(images, 0x08, ">u1"))
    (tmp_path / "lab").write_bytes(idx_bytes(labels, 0x08, ">u1"))

    got_images = read_idx(tmp_path / "img")
    got_labels = read_idx(str(tmp_path / "lab"))

    assert got_images.dtype == np.uint8 and got_images.shape == (7, 5, 4)
    np.testing.assert_array_equal(got_images, images)
    assert got_labels.shape == (7,)
    np.testing.assert_array_equal(got_labels, labels)
    got_images[0, 0, 0] ^= 1  # result is a writable array, not a view of the file bytes


def test_multibyte_is_big_endian_and_returned_native():
    values = np.array([[1, -2, 70000], [-70000, 0, 2**31 - 1]], dtype=np.int32)
    got = read_idx(idx_bytes(values, 0x0C, ">i4"))
    assert got.dtype == np.dtype(np.int32)
    np.testing.assert_array_equal(got, values)


def test_gzipped_input_and_encode_round_trip(images):
    data = encode_idx(images)
    assert data == idx_bytes(images, 0x08, ">u1")
    np.testing.assert_array_equal(read_idx(gzip.compress(data)), images)
    floats = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(read_idx(encode_idx(floats)), floats)


def test_truncated_file_names_the_file(tmp_path, images):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(images, 0x08, ">u1")[:-1])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*truncated"):
        read_idx(path)


def test_truncated_header(tmp_path, images):
    path = tmp_path / "short"
    path.write_bytes(idx_bytes(images, 0x08, ">u1")[:9])
    with pytest.raises(ValueError, match=r"short.*truncated IDX header"):
        read_idx(path)


def test_trailing_bytes_rejected(images):
    with pytest.raises(ValueError, match="trailing"):
        read_idx(idx_bytes(images, 0x08, ">u1") + b"\0", name="padded")


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x03", b"\x00\x00\x07\x03", b"\x00\x00\x08\x00", b"PK\x03\x04"])
def test_bad_magic_names_the_file(tmp_path, images, magic):
    path = tmp_path / "broken.idx"
    path.write_bytes(magic + idx_bytes(images, 0x08, ">u1")[4:])
    with pytest.raises(ValueError, match=r"broken\.idx.*bad IDX magic"):
        read_idx(path)


def test_tiny_input():
    with pytest.raises(ValueError, match=r"<bytes>.*not an IDX file"):
        read_idx(b"\x00\x00")


def test_encode_rejects_unsupported_dtype():
    with pytest.raises(ValueError, match="cannot be stored"):
        encode_idx(np.zeros(3, dtype=np.uint16))
