"""Data layer: image I/O, colour conversion, pairing, names and the synthetic set (fetching lives in occo.fetch)."""

from occo.data.color import rgb_to_ycbcr, ycbcr_to_rgb
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
    sha256_file,
    to_float,
    to_uint8,
    write_text_atomic,
)
from occo.data.names import check_name
from occo.data.pairs import Pair, find_pairs, index_images, load_pair, match_pairs
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
    "find_pairs",
    "index_images",
    "load_array",
    "load_pair",
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
