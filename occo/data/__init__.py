"""Data layer: image I/O, colour conversion, pairing, names, synthetic data, dataset import, downloads and archives."""

from occo.data.archive import extract, is_archive
from occo.data.color import rgb_to_ycbcr, ycbcr_to_rgb
from occo.data.download import fetch, sha256_file
from occo.data.importer import import_dataset
from occo.data.io import (
    IMAGE_EXTS,
    MAX_PIXELS,
    DataError,
    atomic_dir,
    atomic_path,
    load_array,
    read_image,
    read_size,
    rgb_to_gray_matlab,
    rgb_to_gray_opencv,
    save_png,
    to_float,
    to_uint8,
    write_text_atomic,
)
from occo.data.names import check_name
from occo.data.pairs import Pair, find_pairs, index_images, load_pair, match_pairs
from occo.data.registry import load_registry
from occo.data.synthetic import DET_CLASSES, SEG_CLASSES, make_synthetic

__all__ = [
    "DET_CLASSES",
    "IMAGE_EXTS",
    "MAX_PIXELS",
    "SEG_CLASSES",
    "DataError",
    "Pair",
    "atomic_dir",
    "atomic_path",
    "check_name",
    "extract",
    "fetch",
    "find_pairs",
    "import_dataset",
    "index_images",
    "is_archive",
    "load_array",
    "load_pair",
    "load_registry",
    "make_synthetic",
    "match_pairs",
    "read_image",
    "read_size",
    "rgb_to_gray_matlab",
    "rgb_to_gray_opencv",
    "rgb_to_ycbcr",
    "save_png",
    "sha256_file",
    "to_float",
    "to_uint8",
    "write_text_atomic",
    "ycbcr_to_rgb",
]
