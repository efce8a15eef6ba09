"""Dataset registry, download, safe archive reading, per-format readers and HDF5 packing."""
from genlab.data.archives import ArchiveError, CorruptArchiveError, UnsafeArchiveError, iter_members
from genlab.data.download import DownloadError, download_dataset
from genlab.data.formats import RawDataError, open_raw
from genlab.data.hdf5 import PackedDataError, pack_dataset, read_info, read_split
from genlab.data.idx import encode_idx, read_idx
from genlab.data.preprocess import PreprocessingError, prepare
from genlab.data.sources import (DATASETS, DatasetSource, Preprocessing, RemoteFile, default_preprocessing,
                                 register_dataset)

__all__ = [
    "DATASETS", "DatasetSource", "RemoteFile", "Preprocessing", "register_dataset", "default_preprocessing",
    "DownloadError", "download_dataset",
    "ArchiveError", "UnsafeArchiveError", "CorruptArchiveError", "iter_members",
    "RawDataError", "open_raw",
    "PreprocessingError", "prepare",
    "read_idx", "encode_idx",
    "PackedDataError", "pack_dataset", "read_split", "read_info",
]
