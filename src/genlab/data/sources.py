"""The dataset registry: where each dataset's files come from, how they are verified, and its terms.

Two kinds of checksum are supported, as the publishers and the well-known loaders use them:
- `scope="content"`: the digest of the *decompressed* bytes; the file is stored decompressed, so
  the official gzip files, a Debian package's re-compressed copies and a plain local mirror all
  yield identical bytes (Fashion-MNIST);
- `scope="file"`: the digest of the bytes exactly as published (MNIST's .gz files as in
  torchvision's mnist.py, the CIFAR-10, LFW and CelebA archives); the file is stored as published.

Where the publisher gives no checksum (the pix2pix and CycleGAN archives, keras_mnistm.pkl.gz),
the file's `checksum` is None: the download stage records the sha256 of the bytes it first got
(trust on first use, see genlab.data.download) and every later download must match that record.

Sources are tried in order: the dataset's `source` param, $GENLAB_DATA_MIRROR, the local
directories, the mirrors (`<base URL>/<remote name>`), then each file's own URLs and its Google
Drive id. Every checksum below was checked against the loader named beside it.

Layouts (see the image-to-image contract): "plain" datasets pack `images` (+ `labels`); "paired"
ones also pack `inputs`, row i of which pairs with row i of `images`; "two-domain" ones pack the
two unpaired domains as `inputs` (domain A) and `images` (domain B), of any sizes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from genlab.errors import InputError

CHECKSUM_ALGORITHMS = ("md5", "sha256")
CHECKSUM_SCOPES = ("content", "file")
LAYOUTS = ("plain", "paired", "two-domain")
HALVES = ("left", "right")
RESAMPLE_FILTERS = ("nearest", "box", "bilinear", "bicubic", "lanczos")
RECORDED_SUMS = "SHA256SUMS"  # in data/raw/<dataset>/: the sha256 of the first download of each unpublished file


@dataclass(frozen=True)
class RemoteFile:
    name: str                          # the file's name in data/raw/<dataset>/
    checksum: str | None               # hex digest (see `algorithm`, `scope`); None: the publisher gives none
    algorithm: str = "md5"             # md5 | sha256
    scope: str = "content"             # content: digest of the decompressed bytes | file: of the bytes as published
    remote_name: str | None = None     # its name on mirrors and in mirror directories (default: see `remote`)
    urls: tuple[str, ...] = ()         # full URLs of this file, tried after the dataset's mirrors
    gdrive_id: str | None = None       # Google Drive file id (downloaded through the confirm-token flow)
    size: int | None = None            # published size in bytes, where known

    @property
    def remote(self) -> str:
        """The name looked up under a mirror base URL or directory."""
        if self.remote_name:
            return self.remote_name
        return f"{self.name}.gz" if self.scope == "content" else self.name

    @property
    def published(self) -> bool:
        """Whether the registry holds a checksum for this file (else its first download is recorded)."""
        return self.checksum is not None


@dataclass(frozen=True)
class DatasetSource:
    name: str
    files: dict[str, RemoteFile]       # role -> file
    format: str                        # how pack reads the raw files (a name in genlab.data.formats.FORMATS)
    channels: int                      # channels of the packed images (1 or 3)
    side: int                          # default side of the packed images (params: datasets.<name>.side)
    licence: str                       # printed at download, listed in docs/datasets.md
    homepage: str
    mirrors: tuple[str, ...] = ()      # base URLs; "<mirror>/<file.remote>" is fetched
    local_dirs: tuple[str, ...] = ()   # directories tried before the network
    class_names: tuple[str, ...] = ()  # empty: the dataset has no class labels
    crop: int | None = None            # default centre crop (pixels) before resizing; None: whole image
    test_fraction: float | None = None # None: the publisher's own test split; else held out by identity hash
    notes: tuple[str, ...] = field(default_factory=tuple)
    layout: str = "plain"              # plain | paired | two-domain (one of LAYOUTS)
    split_folders: tuple[tuple[str, str], ...] = ()  # (packed split, the archive's folder), where they differ
    input_half: str | None = None      # paired side-by-side images: the half (left | right) packed as `inputs`
    apt_package: str | None = None     # a Debian package that installs the files into one of `local_dirs`

    @property
    def paired(self) -> bool | None:
        """True for paired files, False for two-domain ones, None for plain datasets (no `inputs`)."""
        return None if self.layout == "plain" else self.layout == "paired"

    def folder(self, split: str) -> str:
        """The archive's folder holding packed split `split` (edges2shoes' `val` is its test split)."""
        return dict(self.split_folders).get(split, split)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def labelled(self) -> bool:
        return bool(self.class_names)


@dataclass(frozen=True)
class Preprocessing:
    """How pack turns raw images into the packed (N, C, H, W) uint8 arrays; stored as HDF5 attributes.

    Images are centre-cropped to `crop` x `crop` (when set), then resized to `side` x `side` with
    PIL's `resample` filter (skipped when already that size). `test_fraction` holds out that share
    of identities as the test split, for datasets without an official one (LFW).
    """

    side: int
    crop: int | None = None
    resample: str = "bilinear"
    test_fraction: float | None = None

    def as_attrs(self) -> dict:
        return {"side": self.side, "crop": self.crop, "resample": self.resample, "test_fraction": self.test_fraction}


DATASETS: dict[str, DatasetSource] = {}


def register_dataset(source: DatasetSource) -> DatasetSource:
    """Add `source` to DATASETS; a bad checksum kind or layout is a ValueError. Its format, and what the
    format asks of it (layout, input_half, test_fraction), are checked by genlab.data.formats when the
    readers are loaded (`dataset_format`): this module stays free of their imports."""
    for remote in source.files.values():
        if remote.algorithm not in CHECKSUM_ALGORITHMS or remote.scope not in CHECKSUM_SCOPES:
            raise ValueError(f"dataset {source.name!r}, file {remote.name}: bad checksum kind "
                             f"{remote.algorithm}/{remote.scope}")
        if not remote.published and (remote.algorithm, remote.scope) != ("sha256", "file"):
            raise ValueError(f"dataset {source.name!r}, file {remote.name}: a file without a published "
                             f"checksum is recorded by its sha256 as published (algorithm sha256, scope file)")
    if source.layout not in LAYOUTS:
        raise ValueError(f"dataset {source.name!r}: unknown layout {source.layout!r}; known: {', '.join(LAYOUTS)}")
    DATASETS[source.name] = source
    return source


class UnknownDatasetError(InputError):
    """A dataset name that is not in the registry."""


def dataset_source(name: str) -> DatasetSource:
    """The registry entry of `name`; an unknown name is one clear error listing the known ones."""
    if name not in DATASETS:
        raise UnknownDatasetError(f"unknown dataset {name!r}; registered datasets: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def default_preprocessing(name: str) -> Preprocessing:
    source = DATASETS[name]
    return Preprocessing(side=source.side, crop=source.crop, test_fraction=source.test_fraction)


# --------------------------------------------------------------------------- the registry
register_dataset(DatasetSource(
    name="fashion-mnist",
    # Decompressed-content md5s (the Debian package's gz bytes differ from the official ones).
    files={
        "train_images": RemoteFile("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train_labels": RemoteFile("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"),
        "test_images": RemoteFile("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
        "test_labels": RemoteFile("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"),
    },
    format="idx",
    mirrors=(
        "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion",
    ),
    local_dirs=("/usr/share/datasets/fashion-mnist",),
    apt_package="dataset-fashion-mnist",
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    channels=1, side=28,
    licence="MIT License (Zalando SE). Cite Xiao, Rasul & Vollgraf 2017.",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
))

register_dataset(DatasetSource(
    name="mnist",
    # md5 of the published .gz bytes, as in torchvision/datasets/mnist.py.
    files={
        "train_images": RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", scope="file"),
        "train_labels": RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", scope="file"),
        "test_images": RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", scope="file"),
        "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", scope="file"),
    },
    format="idx",
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist", "http://yann.lecun.com/exdb/mnist"),
    class_names=tuple(str(d) for d in range(10)),
    channels=1, side=28,
    licence="Yann LeCun and Corinna Cortes hold the copyright; made available under the terms of "
            "CC BY-SA 3.0. Cite LeCun, Bottou, Bengio & Haffner 1998.",
    homepage="http://yann.lecun.com/exdb/mnist/",
))

register_dataset(DatasetSource(
    name="cifar10",
    # md5 of the archive, as in torchvision/datasets/cifar.py (tgz_md5).
    files={
        "archive": RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", scope="file",
                              urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                              size=170498071),
    },
    format="cifar10-python",
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    channels=3, side=32,
    licence="No licence stated by the publisher; free to use for research. Cite Krizhevsky 2009, "
            "\"Learning Multiple Layers of Features from Tiny Images\".",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
))

register_dataset(DatasetSource(
    name="lfw",
    # sha256 of lfw.tgz, as in sklearn/datasets/_lfw.py (the figshare copy of the original archive).
    files={
        "archive": RemoteFile("lfw.tgz", "055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0",
                              algorithm="sha256", scope="file",
                              urls=("https://ndownloader.figshare.com/files/5976018",
                                    "http://vis-www.cs.umass.edu/lfw/lfw.tgz")),
    },
    format="lfw-tgz",
    channels=3, side=64, crop=90, test_fraction=0.1,  # seed 000: CenterCrop(90) of the 250x250 photo, Resize(64)
    licence="No licence stated; the photos were collected from news sites for face-recognition research. "
            "Cite Huang, Ramesh, Berg & Learned-Miller 2007 (UMass TR 07-49).",
    homepage="http://vis-www.cs.umass.edu/lfw/",
    notes=("No official generation split: `test_fraction` of identities (by a hash of the person's name) "
           "form the test split, so nobody appears in both.",),
))

register_dataset(DatasetSource(
    name="celeba",
    # Google Drive ids and md5s as in torchvision/datasets/celeba.py.
    files={
        "archive": RemoteFile("img_align_celeba.zip", "00d2c5bc6d35e252742224ab0c1e8fcb", scope="file",
                              gdrive_id="0B7EVK8r0v71pZjFTYXZWM3FlRnM", size=1443490838),
        "partition": RemoteFile("list_eval_partition.txt", "d32c9cbf5e040fd4025c592c306e6668", scope="file",
                                gdrive_id="0B7EVK8r0v71pY0NSMzRuSXJEVkk"),
    },
    format="celeba-zip",
    channels=3, side=64, crop=178,  # centre 178x178 of the aligned 178x218 image, then 64x64 (as mimicry does)
    licence="CelebA is available for NON-COMMERCIAL RESEARCH PURPOSES ONLY (MMLAB, The Chinese University "
            "of Hong Kong); you agree not to reproduce, distribute or sell the images or derived data, "
            "and to cite Liu, Luo, Wang & Tang 2015.",
    homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    notes=("Splits from list_eval_partition.txt: 0 -> train, 2 -> test (1, validation, is not packed).",),
))

# --------------------------------------------------------------------------- image-to-image (PyTorch-GAN)
_NO_CHECKSUM = ("The publisher gives no checksum: the download stage records the sha256 of the first "
                "download (in the download cache and data/raw/{name}/" + RECORDED_SUMS + ") and refuses a later "
                "download that differs; pin one with datasets.{name}.download.checksums.")
_PIX2PIX_URLS = ("https://efrosgans.eecs.berkeley.edu/pix2pix/datasets",
                 "http://people.eecs.berkeley.edu/~tinghuiz/projects/pix2pix/datasets")  # PyTorch-GAN's script
_CYCLEGAN_URLS = ("https://efrosgans.eecs.berkeley.edu/cyclegan/datasets",
                  "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets")


def _unpublished(name: str, bases: tuple[str, ...]) -> RemoteFile:
    """A file the publisher serves without a checksum, at `<base>/<name>` for each base URL."""
    return RemoteFile(name, None, algorithm="sha256", scope="file", urls=tuple(f"{base}/{name}" for base in bases))


register_dataset(DatasetSource(
    name="facades",
    files={"archive": _unpublished("facades.tar.gz", _PIX2PIX_URLS)},
    format="pix2pix-tgz", layout="paired",
    input_half="right",  # each JPEG is photo | label map; PyTorch-GAN's pix2pix.py maps B (labels) to A (photo)
    channels=3, side=256,
    licence="No licence stated by the pix2pix authors; the pictures are the CMP Facade Database's, for "
            "research use. Cite Tyleček & Šára 2013 (CMP facades) and Isola, Zhu, Zhou & Efros 2017 (pix2pix).",
    homepage="https://phillipi.github.io/pix2pix/",
    notes=(_NO_CHECKSUM.format(name="facades"),
           "Pairs: `inputs` = the right half (label map), `images` = the left half (photo), the direction "
           "PyTorch-GAN's pix2pix.py trains. Splits: train -> train, test -> test (val is not packed).",),
))

register_dataset(DatasetSource(
    name="edges2shoes",
    files={"archive": _unpublished("edges2shoes.tar.gz", _PIX2PIX_URLS)},
    format="pix2pix-tgz", layout="paired",
    input_half="left",  # each JPEG is edges | shoe
    split_folders=(("test", "val"),),
    channels=3, side=256,
    licence="No licence stated by the pix2pix authors; the shoes are UT Zappos50K's photos (Yu & Grauman "
            "2014), for academic non-commercial use. Cite Isola, Zhu, Zhou & Efros 2017 (pix2pix).",
    homepage="https://phillipi.github.io/pix2pix/",
    notes=(_NO_CHECKSUM.format(name="edges2shoes"),
           "Pairs: `inputs` = the left half (HED edges), `images` = the right half (shoe photo). The archive "
           "has train and val only: train -> train, val -> test.",),
))

register_dataset(DatasetSource(
    name="apple2orange",
    files={"archive": _unpublished("apple2orange.zip", _CYCLEGAN_URLS)},
    format="cyclegan-zip", layout="two-domain",
    channels=3, side=256,
    licence="No licence stated by the CycleGAN authors; the photos are ImageNet's (search terms apple and "
            "navel orange), under ImageNet's terms: non-commercial research and education. Cite Zhu, Park, "
            "Isola & Efros 2017 (CycleGAN).",
    homepage="https://junyanz.github.io/CycleGAN/",
    notes=(_NO_CHECKSUM.format(name="apple2orange"),
           "Unpaired: `inputs` = domain A (apples, trainA / testA), `images` = domain B (oranges, "
           "trainB / testB); the two domains have different sizes.",),
))

register_dataset(DatasetSource(
    name="mnist-m",
    # keras_mnistm.pkl.gz: what PyTorch-GAN's pixelda (implementations/pixelda/mnistm.py) downloads; it
    # holds the MNIST-M images of MNIST's 60000 + 10000 digits in MNIST's order and no labels, so the
    # labels are MNIST's own label files (verified by their md5, as for the mnist dataset).
    files={
        "archive": _unpublished("keras_mnistm.pkl.gz",
                                ("https://github.com/VanushVaswani/keras_mnistm/releases/download/1.0",)),
        **{role: replace(DATASETS["mnist"].files[role],
                         urls=tuple(f"{base}/{DATASETS['mnist'].files[role].name}" for base in DATASETS["mnist"].mirrors))
           for role in ("train_labels", "test_labels")},
    },
    format="mnistm-pkl",
    class_names=tuple(str(d) for d in range(10)),
    channels=3, side=28,
    licence="No licence stated by the keras_mnistm release; MNIST-M blends MNIST's digits (CC BY-SA 3.0, "
            "LeCun & Cortes) with patches of BSDS500 photos (Berkeley, research use). Cite Ganin & "
            "Lempitsky 2015.",
    homepage="https://github.com/VanushVaswani/keras_mnistm",
    notes=(_NO_CHECKSUM.format(name="mnist-m"),
           "Labels: MNIST's train / t10k label files, row for row (the pickle holds images only)."),
))
