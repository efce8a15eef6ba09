"""Dataset registry, download, IDX parsing and HDF5 packing."""
from genlab.data.download import DownloadError, download_dataset
from genlab.data.hdf5 import pack_idx_to_hdf5, read_info, read_split
from genlab.data.idx import encode_idx, read_idx
from genlab.data.sources import DATASETS, DatasetSource, RemoteFile, register_dataset

__all__ = [
    "DATASETS", "DatasetSource", "RemoteFile", "register_dataset",
    "DownloadError", "download_dataset",
    "read_idx", "encode_idx",
    "pack_idx_to_hdf5", "read_split", "read_info",
]
