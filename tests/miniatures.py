"""Miniature raw files in each dataset's real format, and hostile archives, built in memory.

Importable by any test module: the download and end-to-end tests serve these bytes over HTTP as
the real files. Every builder is deterministic (fixed seeds, gzip and archive timestamps): the
same arguments give the same bytes. The images have structure a model can learn: MNIST digits
are drawn glyphs, CIFAR classes have their own colours and shapes, and LFW / CelebA faces are
ellipses with eyes and a mouth, coloured per person.
"""
from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import pickle
import stat
import struct
import tarfile
import zipfile
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from genlab.data.idx import encode_idx, read_idx

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IDX_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
CELEBA_SIZE = (178, 218)  # width, height of img_align_celeba's images
_MTIME = 1_200_000_000  # a fixed archive timestamp (2008), so builders are deterministic
_ZIP_TIME = (2015, 9, 1, 0, 0, 0)
_FIRST = ("Aaron", "Abel", "Alicia", "Bill", "Carla", "Dora", "Elena", "Frank", "Gina", "Hugo",
          "Ines", "Jon", "Kofi", "Lena", "Mario", "Nadia", "Omar", "Paula", "Quentin", "Rosa")
_LAST = ("Eckhart", "Pacheco", "Molina", "Gates", "Moreno", "Bryant", "Hu", "Sinatra", "Lollo", "Chavez")

# The offending member of each hostile archive (see `hostile_tgz`, `hostile_zip`).
HOSTILE_TAR_MEMBERS = {"traversal": "lfw/../../evil", "absolute": "/etc/evil", "symlink": "lfw/A/link.jpg",
                       "hardlink": "lfw/A/hard.jpg", "device": "lfw/A/null.jpg", "fifo": "lfw/A/fifo.jpg",
                       "bomb": "lfw/A/bomb.jpg"}
HOSTILE_ZIP_MEMBERS = {"traversal": "../evil.jpg", "absolute": "/tmp/evil.jpg", "backslash": "..\\evil.jpg",
                       "symlink": "img_align_celeba/link.jpg", "bomb": "img_align_celeba/bomb.jpg",
                       "lying": "img_align_celeba/lying.jpg"}
BOMB_DECLARED_BYTES = 1 << 40  # 1 TiB declared, nothing behind it


# --------------------------------------------------------------------------- MNIST / Fashion-MNIST
def mnist_files(n_train: int, n_test: int, *, seed: int = 0) -> dict[str, bytes]:
    """MNIST's four files as published: gzipped IDX, named `<name>.gz`."""
    return {f"{name}.gz": gzip.compress(data, mtime=0) for name, data in _idx_files(n_train, n_test, seed).items()}


def fashion_mnist_files(n_train: int, n_test: int, *, seed: int = 0) -> dict[str, bytes]:
    """Fashion-MNIST's four files as the download stage stores them: decompressed IDX."""
    return _idx_files(n_train, n_test, seed)


def _idx_files(n_train: int, n_test: int, seed: int) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    files = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        files[IDX_NAMES[f"{split}_images"]] = encode_idx(np.stack([_digit(int(d), rng) for d in labels]))
        files[IDX_NAMES[f"{split}_labels"]] = encode_idx(labels)
    return files


def _digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 white-on-black glyph of `digit`, shifted a little."""
    image = Image.new("L", (28, 28))
    x, y = (int(v) for v in rng.integers(4, 10, 2))
    ImageDraw.Draw(image).text((x, y - 4), str(digit), fill=255, font=_font())
    return np.asarray(image)


@functools.cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=20)


# --------------------------------------------------------------------------- CIFAR-10
def cifar10_archive(n_per_batch: int, *, seed: int = 0) -> bytes:
    """cifar-10-python.tar.gz: cifar-10-batches-py/{batches.meta, data_batch_1..5, test_batch} pickles.

    Each batch is a dict of b"batch_label", b"labels" (list), b"data" (uint8 (n, 3072), rows CHW)
    and b"filenames", pickled with protocol 2 as the published files are.
    """
    rng = np.random.default_rng(seed)
    meta = {b"num_cases_per_batch": n_per_batch, b"label_names": [c.encode() for c in CIFAR_CLASSES],
            b"num_vis": 3072}
    members: list[tarfile.TarInfo | tuple[str, bytes]] = [
        _tar_dir("cifar-10-batches-py"),
        ("cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2)),
    ]
    labels_text = [f"training batch {i} of 5" for i in range(1, 6)] + ["testing batch 1 of 1"]
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name, batch_label in zip(names, labels_text):
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        data = np.stack([_cifar_image(label, rng).transpose(2, 0, 1).reshape(-1) for label in labels])
        batch = {b"batch_label": batch_label.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"{CIFAR_CLASSES[label]}_s_{i:06d}.png".encode() for i, label in enumerate(labels)]}
        members.append((f"cifar-10-batches-py/{name}", pickle.dumps(batch, protocol=2)))
    members.append(("cifar-10-batches-py/readme.html", b"<meta HTTP-EQUIV=\"REFRESH\" content=\"0\">"))
    return tar_archive(members)


def _cifar_image(label: int, rng: np.random.Generator) -> np.ndarray:
    """32x32x3: a class-coloured square or disc on a class-coloured background, plus noise."""
    palette = np.random.default_rng(1000 + label).integers(0, 256, (2, 3))
    image = Image.new("RGB", (32, 32), tuple(int(c) for c in palette[0]))
    x, y = (int(v) for v in rng.integers(4, 14, 2))
    box = (x, y, x + 14, y + 14)
    draw = ImageDraw.Draw(image)
    (draw.ellipse if label % 2 else draw.rectangle)(box, fill=tuple(int(c) for c in palette[1]))
    noise = rng.integers(-12, 13, (32, 32, 3))
    return np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- LFW
def lfw_names(people: int) -> list[str]:
    """`people` distinct names in LFW's `First_Last` form."""
    if people > len(_FIRST) * len(_LAST):
        raise ValueError(f"at most {len(_FIRST) * len(_LAST)} people")
    return [f"{_FIRST[i % len(_FIRST)]}_{_LAST[i // len(_FIRST)]}" for i in range(people)]


def lfw_archive(people: int, images_per_person: int, side: int = 250, *, shuffle: bool = False,
                seed: int = 0) -> bytes:
    """lfw.tgz: lfw/<Name>/<Name>_000k.jpg RGB JPEGs of side x side; `shuffle` permutes the member order."""
    rng = np.random.default_rng(seed)
    members: list[tarfile.TarInfo | tuple[str, bytes]] = []
    for index, name in enumerate(lfw_names(people)):
        members.append(_tar_dir(f"lfw/{name}"))
        for k in range(1, images_per_person + 1):
            image = face_image((side, side), person=index, rng=rng)
            members.append((f"lfw/{name}/{name}_{k:04d}.jpg", _jpeg(image)))
    if shuffle:
        members = [members[i] for i in rng.permutation(len(members))]
    return tar_archive([_tar_dir("lfw"), *members])


def face_image(size: tuple[int, int], *, person: int, rng: np.random.Generator) -> Image.Image:
    """A face-like RGB picture: background, shoulders, head, hair, eyes and mouth coloured per person.

    Geometry is laid out as LFW's 250x250 crops are (the face in the central ~100 pixels) and
    scaled to `size`; each call jitters position and brightness a little.
    """
    width, height = size
    look = np.random.default_rng(person).integers(0, 256, (4, 3))
    skin = tuple(int(v) for v in np.array([205, 160, 130]) + look[1] % 50 - 25)
    image = Image.new("RGB", (250, 250), tuple(int(v) for v in look[0]))
    draw = ImageDraw.Draw(image)
    dx, dy = (int(v) for v in rng.integers(-6, 7, 2))
    cx, cy = 125 + dx, 118 + dy
    draw.ellipse((cx - 90, cy + 70, cx + 90, cy + 200), fill=tuple(int(v) for v in look[2]))  # shoulders
    draw.ellipse((cx - 45, cy - 60, cx + 45, cy + 60), fill=skin)  # head
    draw.chord((cx - 47, cy - 64, cx + 47, cy + 10), 180, 360, fill=tuple(int(v) for v in look[3] // 3))  # hair
    for ex in (cx - 18, cx + 18):
        draw.ellipse((ex - 6, cy - 8, ex + 6, cy + 2), fill=(30, 30, 30))
    draw.line((cx - 15, cy + 32, cx + 15, cy + 32), fill=(120, 30, 30), width=4)
    gain = float(rng.uniform(0.85, 1.15))
    image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) * gain, 0, 255).astype(np.uint8))
    return image if size == image.size else image.resize(size, Image.Resampling.BILINEAR)


# --------------------------------------------------------------------------- CelebA
def celeba_files(n: int, *, seed: int = 0) -> dict[str, bytes]:
    """img_align_celeba.zip (img_align_celeba/000001.jpg ..., 178x218) and list_eval_partition.txt.

    As in the real list, the images come in partition order: the first 80% train (0), the next
    10% validation (1), the rest test (2).
    """
    rng = np.random.default_rng(seed)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    partition = [0 if i < 0.8 * n else 1 if i < 0.9 * n else 2 for i in range(n)]
    entries = [(f"img_align_celeba/{name}", _jpeg(face_image(CELEBA_SIZE, person=i % 7, rng=rng)))
               for i, name in enumerate(names)]
    listing = "".join(f"{name} {p}\n" for name, p in zip(names, partition))
    return {"img_align_celeba.zip": zip_archive(entries, directories=("img_align_celeba/",)),
            "list_eval_partition.txt": listing.encode()}


# --------------------------------------------------------------------------- image-to-image (pix2pix, CycleGAN, MNIST-M)
LEFT_COLOUR, RIGHT_COLOUR = (200, 40, 40), (40, 40, 200)  # background of each half of a pix2pix pair


def pix2pix_archive(dataset: str, counts: dict[str, int], side: int = 64, *, shuffle: bool = False,
                    seed: int = 0) -> bytes:
    """<dataset>.tar.gz as the pix2pix archives are: <dataset>/<folder>/<k>.jpg, k = 1..n per folder, each
    JPEG a pair side by side (2*side x side). The left half is red, the right half blue, and both show
    the same white square, placed per image, so a test can tell the halves apart and check the pairing.
    `shuffle` permutes the member order."""
    rng = np.random.default_rng(seed)
    members: list[tarfile.TarInfo | tuple[str, bytes]] = []
    for folder, n in counts.items():
        members.append(_tar_dir(f"{dataset}/{folder}"))
        for k in range(1, n + 1):
            x, y = (int(v) for v in rng.integers(0, side // 2, 2))
            pair = Image.new("RGB", (2 * side, side))
            for index, colour in enumerate((LEFT_COLOUR, RIGHT_COLOUR)):
                half = Image.new("RGB", (side, side), colour)
                ImageDraw.Draw(half).rectangle((x, y, x + side // 3, y + side // 3), fill=(255, 255, 255))
                pair.paste(half, (index * side, 0))
            members.append((f"{dataset}/{folder}/{k}.jpg", _jpeg(pair)))
    if shuffle:
        members = [members[i] for i in rng.permutation(len(members))]
    return tar_archive([_tar_dir(dataset), *members])


def cyclegan_archive(dataset: str, counts: dict[str, int], side: int = 64, *, seed: int = 0) -> bytes:
    """<dataset>.zip as the CycleGAN archives are: <dataset>/{trainA,trainB,testA,testB}/<name>.jpg;
    domain A pictures are red discs (apples), domain B orange ones, on a light background."""
    rng = np.random.default_rng(seed)
    entries = []
    for folder, n in counts.items():
        colour = (190, 30, 40) if folder.endswith("A") else (250, 150, 20)
        for k in range(n):
            image = Image.new("RGB", (side, side), (235, 235, 225))
            r = int(rng.integers(side // 5, side // 3))
            cx, cy = (int(v) for v in rng.integers(r, side - r, 2))
            ImageDraw.Draw(image).ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
            entries.append((f"{dataset}/{folder}/n0774{k:04d}_{k}.jpg", _jpeg(image)))
    return zip_archive(entries, directories=[f"{dataset}/"] + [f"{dataset}/{folder}/" for folder in counts])


def mnistm_files(n_train: int, n_test: int, *, seed: int = 0) -> dict[str, bytes]:
    """keras_mnistm.pkl.gz (a protocol-2 pickle of {b"train", b"test"}: uint8 (n, 28, 28, 3) arrays, MNIST's
    digits blended into coloured noise) and MNIST's two label files, as published (gzipped IDX)."""
    idx = _idx_files(n_train, n_test, seed)
    rng = np.random.default_rng(seed + 1)
    arrays = {}
    for split, prefix in ((b"train", "train"), (b"test", "t10k")):
        digits = read_idx(idx[f"{prefix}-images-idx3-ubyte"])
        background = rng.integers(0, 256, (len(digits), 1, 1, 3)) + rng.integers(-30, 31, (*digits.shape, 3))
        blended = np.abs(np.clip(background, 0, 255) - digits[..., None].astype(np.int64))
        arrays[split] = blended.astype(np.uint8)
    return {"keras_mnistm.pkl.gz": gzip.compress(pickle.dumps(arrays, protocol=2), mtime=0),
            **{f"{name}.gz": gzip.compress(idx[name], mtime=0)
               for name in (IDX_NAMES["train_labels"], IDX_NAMES["test_labels"])}}


# --------------------------------------------------------------------------- archive writers
def tar_archive(entries: Iterable[tarfile.TarInfo | tuple[str, bytes]], compression: str = "gz") -> bytes:
    """A tar of `entries` ((name, bytes) regular files, or TarInfo headers written as they are).

    `compression`: "gz", "bz2", "xz" or "" (plain tar). Headers carry fixed times and owners.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                tar.addfile(_tar_info(name, tarfile.REGTYPE, size=len(data)), io.BytesIO(data))
    compressors = {"gz": lambda b: gzip.compress(b, mtime=0), "bz2": bz2.compress, "xz": lzma.compress,
                   "": lambda b: b}
    return compressors[compression](buffer.getvalue())


def zip_archive(entries: Iterable[tuple[str, bytes]], *, directories: Iterable[str] = (),
                modes: dict[str, int] | None = None) -> bytes:
    """A deflated zip of (name, bytes) entries after the `directories` entries; `modes`: Unix st_mode by name."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in directories:
            archive.writestr(_zip_info(name, stat.S_IFDIR | 0o755), b"")
        for name, data in entries:
            mode = (modes or {}).get(name, stat.S_IFREG | 0o644)
            archive.writestr(_zip_info(name, mode), data)
    return buffer.getvalue()


def _tar_info(name: str, kind: bytes, *, size: int = 0, linkname: str = "", mode: int = 0o644,
              device: tuple[int, int] = (0, 0)) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.mode, info.mtime = kind, size, linkname, mode, _MTIME
    info.devmajor, info.devminor = device
    info.uname = info.gname = "lfw"
    return info


def _tar_dir(name: str) -> tarfile.TarInfo:
    return _tar_info(name, tarfile.DIRTYPE, mode=0o755)


def _zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix: external_attr carries st_mode
    info.external_attr = mode << 16
    return info


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


# --------------------------------------------------------------------------- hostile archives
def hostile_tgz(kind: str) -> bytes:
    """An LFW-like tgz whose second member is hostile: see HOSTILE_TAR_MEMBERS for each kind's member."""
    member = HOSTILE_TAR_MEMBERS[kind]
    if kind in ("traversal", "absolute"):
        hostile: tarfile.TarInfo | tuple[str, bytes] = (member, b"evil")
    else:
        hostile = {
            "symlink": lambda: _tar_info(member, tarfile.SYMTYPE, linkname="/etc/passwd"),
            "hardlink": lambda: _tar_info(member, tarfile.LNKTYPE, linkname="/etc/passwd"),
            "device": lambda: _tar_info(member, tarfile.CHRTYPE, device=(1, 3)),  # /dev/null
            "fifo": lambda: _tar_info(member, tarfile.FIFOTYPE),
            "bomb": lambda: _tar_info(member, tarfile.REGTYPE, size=BOMB_DECLARED_BYTES),  # header, no data
        }[kind]()
    return tar_archive([("lfw/A/A_0001.jpg", b"fine"), hostile])


def truncated_tgz() -> bytes:
    """A real-format LFW tgz cut in the middle of its gzip stream."""
    data = lfw_archive(2, 2, side=64)
    return data[:len(data) // 2]


def hostile_zip(kind: str) -> bytes:
    """A CelebA-like zip with one hostile member: see HOSTILE_ZIP_MEMBERS for each kind's member.

    "bomb" declares 2 GiB for a small member; "lying" declares fewer bytes than the member holds
    (both sizes patched in the local and central headers).
    """
    member = HOSTILE_ZIP_MEMBERS[kind]
    modes = {member: stat.S_IFLNK | 0o777} if kind == "symlink" else None
    payload = b"/etc/passwd" if kind == "symlink" else bytes(range(256)) * 4
    data = zip_archive([("img_align_celeba/000001.jpg", b"fine"), (member, payload)], modes=modes)
    declared = {"bomb": 0x7FFF_FFFF, "lying": 10}.get(kind)
    return _patch_zip_size(data, member, declared) if declared is not None else data


def _patch_zip_size(data: bytes, member: str, size: int) -> bytes:
    """Set `member`'s uncompressed size in its local header (offset 22) and central header (offset 24)."""
    patched = bytearray(data)
    encoded = member.encode()
    for signature, offset, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = 0
        while (start := patched.find(signature, start)) >= 0:
            if patched[start + name_at:start + name_at + len(encoded)] == encoded:
                struct.pack_into("<I", patched, start + offset, size)
            start += 4
    return bytes(patched)


def packed_bars(raw_dir, out_path, counts: tuple[int, int], *, noise: int, rows: tuple[int, int],
                cols: tuple[int, int], value: int):
    """A packed Fashion-MNIST-shaped file (train, test counts) whose class k is a bright bar at rows
    2k + rows[0] .. 2k + rows[1] over `cols`, on uniform noise below `noise`; returns `out_path`."""
    from genlab.data.hdf5 import pack_dataset
    from genlab.data.sources import default_preprocessing

    rng = np.random.default_rng(0)
    for prefix, n in zip(("train", "t10k"), counts):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, noise, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k + rows[0]: 2 * k + rows[1], cols[0]:cols[1]] = value
        (raw_dir / f"{prefix}-images-idx3-ubyte").write_bytes(encode_idx(images))
        (raw_dir / f"{prefix}-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    pack_dataset("fashion-mnist", raw_dir, out_path, default_preprocessing("fashion-mnist"))
    return out_path
