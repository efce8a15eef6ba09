"""The dataset registry: where each dataset's files come from and how they are verified.

Files are verified by the md5 of their *decompressed* content, so the official gzip files,
a Debian package's re-compressed copies and a plain local mirror all yield identical bytes.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    name: str          # stored (decompressed) file name, e.g. "train-images-idx3-ubyte"
    md5: str           # md5 of the decompressed content


@dataclass(frozen=True)
class DatasetSource:
    name: str
    files: dict[str, RemoteFile]       # role ("train_images", ...) -> file
    mirrors: tuple[str, ...]           # base URLs; "<mirror>/<name>.gz" is fetched
    local_dirs: tuple[str, ...]        # directories tried before the network
    class_names: tuple[str, ...]
    channels: int
    height: int
    width: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DATASETS: dict[str, DatasetSource] = {}


def register_dataset(source: DatasetSource) -> DatasetSource:
    DATASETS[source.name] = source
    return source


register_dataset(DatasetSource(
    name="fashion-mnist",
    files={
        "train_images": RemoteFile("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train_labels": RemoteFile("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"),
        "test_images": RemoteFile("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
        "test_labels": RemoteFile("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"),
    },
    mirrors=(
        "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion",
    ),
    local_dirs=("/usr/share/datasets/fashion-mnist",),
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    channels=1, height=28, width=28,
))
