"""Image and file I/O: decoding within a pixel cap, dtype and grey conversion, PNG writing, atomic writes, file
hashes, and reading checkpoints without unpickling code."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from occo.config.types import MAX_PIXELS

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# MATLAB rgb2gray weights: the first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]).
MATLAB_GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)

_UINT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class DataError(ValueError):
    """Bad input data; the message is one line and names the offending file or folder."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _pil_to_array(im: Image.Image, path: Path) -> np.ndarray:
    mode = im.mode
    if mode in ("L", "RGB"):
        return np.array(im)
    if mode == "1":
        return np.array(im.convert("L"))
    if mode in _UINT16_MODES:
        return np.asarray(im).astype(np.uint16)
    if mode == "I":
        arr = np.asarray(im)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DataError(f"cannot read image {path}: 32-bit values span {arr.min()}..{arr.max()}, outside 0..65535")
        return arr.astype(np.uint16)
    if mode in ("P", "PA", "LA", "La", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        return np.array(im.convert("RGB"))
    raise DataError(f"cannot read image {path}: unsupported image mode {mode}")


@contextmanager
def _open_image(path: Path, max_pixels: int | None) -> Iterator[Image.Image]:
    """Open ``path`` (header only) and refuse it when its header claims more than ``max_pixels`` pixels."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            if max_pixels is not None and width * height > max_pixels:
                raise DataError(
                    f"image {path} is {height}x{width} = {width * height:,} pixels, over the cap of "
                    f"{max_pixels:,} pixels (max_pixels)"
                )
            yield im
    except Image.DecompressionBombError as exc:
        cap = "" if max_pixels is None else f" of {max_pixels:,} pixels (max_pixels)"
        raise DataError(f"image {path} is over the cap{cap}: {_one_line(exc)}") from exc


def load_array(path: str | Path, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Decode an image file to (H,W) grey or (H,W,3) RGB, dtype uint8 or uint16.

    16-bit grey stays uint16, 1-bit becomes 0/255 uint8, palette/alpha/CMYK images become RGB
    (alpha dropped). An image whose header claims more than ``max_pixels`` pixels is refused
    before decoding; unreadable, corrupt or truncated files raise DataError naming the file.
    """
    path = Path(path)
    try:
        with _open_image(path, max_pixels) as im:
            im.load()
            return _pil_to_array(im, path)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, ImportError) as exc:  # ImportError: ultralytics patches Image.open (HEIF)
        raise DataError(f"cannot read image {path}: {_one_line(exc)}") from exc


def read_size(path: str | Path, *, max_pixels: int | None = MAX_PIXELS) -> tuple[int, int]:
    """(height, width) of an image file from its header, with the same checks as :func:`load_array`."""
    path = Path(path)
    try:
        with _open_image(path, max_pixels) as im:
            return im.size[1], im.size[0]
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError, ImportError) as exc:  # ImportError: ultralytics patches Image.open (HEIF)
        raise DataError(f"cannot read image {path}: {_one_line(exc)}") from exc


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map uint16 to uint8 by round(x/257); uint8 is returned unchanged."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise DataError(f"to_uint8 expects uint8 or uint16 pixels, got {arr.dtype}")


def to_float(arr: np.ndarray) -> torch.Tensor:
    """Convert a (H,W) or (H,W,3) uint8/uint16 image to a float32 (C,H,W) tensor in [0,1]."""
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(arr.dtype)
    if scale is None:
        raise DataError(f"to_float expects uint8 or uint16 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        chw = arr[None]
    elif arr.ndim == 3 and arr.shape[2] == 3:
        chw = arr.transpose(2, 0, 1)
    else:
        raise DataError(f"to_float expects a (H,W) or (H,W,3) image, got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(chw, dtype=np.float32) / np.float32(scale))


def read_image(path: str | Path, *, max_pixels: int | None = MAX_PIXELS) -> torch.Tensor:
    """Read an image file as a float32 (C,H,W) tensor in [0,1]."""
    return to_float(load_array(path, max_pixels=max_pixels))


def rgb_to_gray_matlab(arr: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` on uint8: float64 weighted sum, rounded half away from zero.

    Grey (H,W) input is returned unchanged.
    """
    if arr.ndim == 2:
        return arr
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise DataError(f"rgb_to_gray_matlab expects uint8 (H,W,3), got {arr.dtype} {arr.shape}")
    grey = arr.astype(np.float64) @ np.asarray(MATLAB_GRAY_WEIGHTS, dtype=np.float64)
    return np.clip(np.floor(grey + 0.5), 0, 255).astype(np.uint8)


def rgb_to_gray_opencv(arr: np.ndarray) -> np.ndarray:
    """``np.round(cv2.cvtColor(img.astype(float32), COLOR_RGB2GRAY))`` as float64.

    Grey (H,W) input is returned as float64.
    """
    if arr.ndim == 2:
        return arr.astype(np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise DataError(f"rgb_to_gray_opencv expects (H,W,3), got shape {arr.shape}")
    grey = cv2.cvtColor(np.ascontiguousarray(arr, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    return np.round(grey).astype(np.float64)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sibling(path: Path, tag: str) -> Path:
    """A fresh hidden name in ``path``'s folder (created with the caller's umask, unlike mkstemp)."""
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:12]}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it takes the place of ``path``.

    An interrupted build leaves the previous ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        old = _sibling(path, "old") if path.exists() else None
        if old is not None:
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_torch(path: str | Path, payload: Any) -> Path:
    """``torch.save(payload)`` to ``path`` atomically and fsync'd. The payload is serialised in memory first, so a
    failed write (a full disk) raises the OSError itself naming ``path`` (``[Errno 28] No space left on device:
    '<path>'``), not torch's ``enforce fail`` RuntimeError; the previous file is kept."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    return path


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 text to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


QUANTISERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"round": torch.round, "truncate": torch.trunc}
"""How :func:`save_png` turns ``x·255`` into 8 bits: ``round`` to the nearest level (ours), or ``truncate`` toward
zero (the authors' test script, ``np.uint8(x·255)``: on average half a level darker)."""


def _as_uint8_image(img: np.ndarray | torch.Tensor, quantise: str = "round") -> np.ndarray:
    if isinstance(img, torch.Tensor):
        if not img.is_floating_point():
            raise DataError(f"save_png expects a float tensor in [0,1], got {img.dtype}")
        t = img.detach().to("cpu", torch.float32)
        if t.ndim == 3:
            t = t[0] if t.shape[0] == 1 else t.permute(1, 2, 0)
        img = QUANTISERS[quantise](t * 255.0).clamp_(0, 255).to(torch.uint8).numpy()
    if img.dtype != np.uint8:
        raise DataError(f"save_png expects uint8 pixels or a float tensor, got {img.dtype}")
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise DataError(f"save_png expects a (H,W) or (H,W,3) image, got shape {img.shape}")
    return np.ascontiguousarray(img)


def save_png(
    path: str | Path, img: np.ndarray | torch.Tensor, *, text: dict[str, str] | None = None, quantise: str = "round"
) -> None:
    """Write a PNG atomically (parent folders created).

    ``img`` is a uint8 (H,W)/(H,W,3) array or a float (C,H,W)/(H,W) tensor in [0,1]
    (stored as round(x*255), or trunc(x*255) with ``quantise="truncate"``, clamped to 0..255). ``text`` goes
    into tEXt chunks before the image data, where :func:`png_text` reads it without decoding the pixels.
    """
    arr = _as_uint8_image(img, quantise)
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG", pnginfo=info)


def png_text(path: str | Path, key: str) -> str | None:
    """The tEXt value ``key`` of a PNG written by :func:`save_png`; None when absent or unreadable."""
    try:
        with Image.open(path) as im:
            value = im.info.get(key) if im.format == "PNG" else None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return value if isinstance(value, str) else None


PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
"""The IEND chunk every complete PNG ends with."""


def png_is_whole(path: str | Path) -> bool:
    """True when the PNG at ``path`` runs to its IEND chunk with every chunk's CRC right (a write cut short or a
    damaged file is not), read without decoding the pixels."""
    try:
        with Path(path).open("rb") as fh:
            fh.seek(-len(PNG_END), os.SEEK_END)
            if fh.read() != PNG_END:
                return False
        with Image.open(path) as im:
            im.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False
    return True


class CheckpointError(DataError):
    """A checkpoint file that cannot be read, converted, loaded or saved; one line naming the file and what to do."""


ZIP_MAGIC = b"PK\x03\x04"
"""The first bytes of a zip file (torch.save's format since 1.6)."""
_PICKLE_MAGIC = b"\x80"  # the legacy format: a pickle (protocol 2+) first


def _refused_global(err: Exception) -> str | None:
    """The Python object that ``weights_only`` refused to unpickle, from torch's message."""
    match = re.search(r"GLOBAL ([\w.]+)|but got <class '([\w.]+)'>", str(err))
    return next(name for name in match.groups() if name) if match else None


def read_checkpoint(path: str | Path, *, remedy: str) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` of a dict; CheckpointError naming the file, what is wrong
    (missing, empty, truncated, not a PyTorch file, pickled code) and ``remedy`` (what to do) otherwise.

    ``weights_only`` never executes code from the file: a pickle that would is refused, not run.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}; {remedy}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes; a copy or write cut short): {remedy}")
    with path.open("rb") as f:
        head = f.read(len(ZIP_MAGIC))
    if not head.startswith((ZIP_MAGIC, _PICKLE_MAGIC)):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (it starts with {head!r}): {remedy}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # refused by weights_only, truncated or corrupt
        if (name := _refused_global(err)) is not None:
            raise CheckpointError(
                f"{path} holds pickled Python objects ({name}), which occo does not load because unpickling can "
                f"run code: {remedy}"
            ) from err
        detail = " ".join(str(err).split())[:120] or type(err).__name__
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({size} bytes; {detail}): {remedy}") from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not a checkpoint dict: {remedy}")
    return ckpt
