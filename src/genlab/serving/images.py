"""Images from outside the pipeline, read as genlab holds them (uint8, N x C x H x W), and written back out.

Read: a folder of PNG/JPEG files (in name order), an .npz (its `images` array, or its only one) or an HDF5
file (its `images` dataset: a samples file, or any file of that layout). Nothing is resized or converted
silently: a size, channel count, dtype or image mode genlab cannot take as it is is refused in one line.
Written: one PNG grid, an HDF5 samples file (the evaluate stage's layout) or a folder of PNGs, atomically.
"""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np

from genlab.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
HDF5_SUFFIXES = (".h5", ".hdf5")
#: PIL image modes read as they are: grey and RGB.
CHANNELS = {"L": 1, "RGB": 3}


class ImagesError(InputError):
    """Images that cannot be read, or not as the model or dataset needs them."""


def read_images(path: str | Path) -> np.ndarray:
    """uint8 (N, C, H, W) from a folder of PNG/JPEG files, an .npz or an HDF5 file."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path)
    if not path.is_file():
        raise ImagesError(f"{path}: no such file or folder (give a folder of PNG/JPEG files, an .npz or an .h5)")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            keys = list(f.keys())
            if "images" not in keys and len(keys) != 1:
                raise ImagesError(f"{path}: holds {', '.join(keys) or 'no arrays'}; name the images array `images`")
            array = f["images" if "images" in keys else keys[0]]
    elif path.suffix in HDF5_SUFFIXES:
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if "images" not in f:
                    raise ImagesError(f"{path}: no `images` dataset at the top level (it has: {', '.join(f) or 'none'})")
                array = f["images"][()]
        except OSError as err:
            raise ImagesError(f"{path}: unreadable HDF5 file ({str(err).splitlines()[0]})") from None
    else:
        raise ImagesError(f"{path}: not a folder, an .npz or an .h5 file")
    return _as_nchw(np.asarray(array), path)


def _read_folder(folder: Path) -> np.ndarray:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImagesError(f"{folder}: no {', '.join(IMAGE_SUFFIXES)} files")
    images = []
    for file in files:
        with Image.open(file) as image:
            if image.mode not in CHANNELS:
                raise ImagesError(f"{file}: image mode {image.mode}; genlab reads grey (L) or RGB images as they are "
                                  f"and converts nothing")
            array = np.asarray(image, dtype=np.uint8)
        array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        if images and array.shape != images[0].shape:
            raise ImagesError(f"{file}: {_geometry(array.shape)}, but {files[0].name} is {_geometry(images[0].shape)}; "
                              f"every image must be the same size and channel count")
        images.append(array)
    return np.stack(images)


def _as_nchw(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype != np.uint8:
        raise ImagesError(f"{path}: images are {array.dtype}; give uint8 pixel values 0-255")
    if array.ndim == 3:  # (N, H, W): grey
        return np.ascontiguousarray(array[:, None])
    if array.ndim != 4:
        raise ImagesError(f"{path}: images of shape {array.shape}; give (N, C, H, W), (N, H, W, C) or (N, H, W)")
    if array.shape[1] not in (1, 3) and array.shape[3] in (1, 3):  # channels last
        array = array.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(array)


def _geometry(shape) -> str:
    c, h, w = shape[-3:]
    return f"{h}x{w} with {c} channel{'s' if c != 1 else ''}"


def require_geometry(images: np.ndarray, shape, what: str, source: str | Path) -> None:
    """Refuse images whose (C, H, W) is not `shape`, in one line: genlab never resizes them silently."""
    if tuple(images.shape[1:]) != tuple(shape):
        raise ImagesError(f"{source}: images are {_geometry(images.shape)}, but {what} takes {_geometry(shape)}; "
                          f"genlab does not resize or convert them")


def png_bytes(image: np.ndarray) -> bytes:
    """One uint8 (C, H, W) image as PNG bytes (the same bytes for the same pixels)."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)).save(out, format="PNG")
    return out.getvalue()


def write_folder(folder: Path, images: np.ndarray) -> None:
    """One PNG an image (000000.png, ...) in `folder`, which must not hold files yet; it appears complete."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ImagesError(f"{folder}: folder exists and is not empty; name a new folder")
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, image in enumerate(images):
        (tmp / f"{i:06d}.png").write_bytes(png_bytes(image))
    if folder.exists():
        folder.rmdir()
    tmp.rename(folder)
