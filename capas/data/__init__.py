"""Datasets by name: ``load("digits")`` gives train / validation / test tensors.

Offline: ``digits`` (the default), the 2-D toys ``xor``, ``circles``, ``moons``,
``spirals``, ``gaussians`` and the ``sine`` series. Downloaded on first use into
``$CAPAS_DATA`` (checksum-verified, atomic): ``mnist``, ``fashion-mnist``, ``semeion``.
Local ``.npz`` only: ``usps``, ``optdigits``, ``letter``.
"""

from capas.data.dataset import Dataset, DatasetInfo
from capas.data.downloads import data_dir
from capas.data.preprocess import Standardizer, encode_targets, one_hot
from capas.data.registry import DEFAULT_DATASET, available, get_entry, load, names

__all__ = [
    "DEFAULT_DATASET",
    "Dataset",
    "DatasetInfo",
    "Standardizer",
    "available",
    "data_dir",
    "encode_targets",
    "get_entry",
    "load",
    "names",
    "one_hot",
]
