"""A small deterministic synthetic infrared-visible set with labels, for tests and smoke runs.

Scenes are night road views: warm people (upright ellipses with a head) and vehicles (rounded
rectangles) over a cool infrared background, and a dim, gamma-encoded RGB view with a textured
road, light pools and a crushed black level. Some objects are infrared-only (warm, but standing in
darkness in the visible frame) and some visible-only (lit, but at ambient temperature), so the
per-modality masks have shared and unique regions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from occo.config import Synthetic
from occo.data.io import atomic_dir, save_png

log = logging.getLogger(__name__)

SYNTHETIC = Synthetic()
"""The `download.synthetic` defaults: what `make_synthetic` makes when not told otherwise."""

# MSRS / MFNet segmentation class ids.
SEG_CLASSES = {
    "unlabelled": 0,
    "car": 1,
    "person": 2,
    "bike": 3,
    "curve": 4,
    "car_stop": 5,
    "guardrail": 6,
    "color_cone": 7,
    "bump": 8,
}
# YOLO detection class ids of the synthetic labels.
DET_CLASSES = {"person": 0, "car": 1}

_VISIBILITY = ("both", "both", "ir", "vi")  # drawn from for objects after one ir-only and one vi-only
_BLACK_LEVEL = 0.08  # encoded values below this are crushed to 0 in the visible frame
_SEEN_LEVEL = 0.06  # an object pixel counts as visible when its brightest channel exceeds this


@dataclass(frozen=True)
class _Object:
    kind: str  # "person" or "car"
    cx: float
    cy: float
    w: float
    h: float
    in_ir: bool
    in_vi: bool
    temperature: float  # infrared grey level at the object's centre
    colour: tuple[float, float, float]  # linear RGB albedo


def _shape(obj: _Object, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean mask and squared normalised radius (for shading) of one object."""
    u = (xx - obj.cx) / (obj.w / 2)
    v = (yy - obj.cy) / (obj.h / 2)
    r2 = u * u + v * v
    if obj.kind == "person":
        body_v = (yy - (obj.cy + 0.12 * obj.h)) / (0.4 * obj.h)
        body = u * u + body_v * body_v <= 1.0
        head_r = 0.11 * obj.h
        head = (xx - obj.cx) ** 2 + (yy - (obj.cy - 0.38 * obj.h)) ** 2 <= head_r * head_r
        return body | head, r2
    radius = 0.25 * min(obj.w, obj.h)
    dx = np.maximum(np.abs(xx - obj.cx) - (obj.w / 2 - radius), 0.0)
    dy = np.maximum(np.abs(yy - obj.cy) - (obj.h / 2 - radius), 0.0)
    inside = (np.abs(xx - obj.cx) <= obj.w / 2) & (np.abs(yy - obj.cy) <= obj.h / 2)
    return inside & (dx * dx + dy * dy <= radius * radius), r2


def _objects(rng: np.random.Generator, height: int, width: int, horizon: float) -> list[_Object]:
    """Random objects standing on the ground, sorted far to near (painting order)."""
    n = int(rng.integers(4, 8))
    visibility = ["ir", "vi", *rng.choice(_VISIBILITY, size=n - 2)]
    objects = []
    for vis in visibility:
        kind = "person" if rng.random() < 0.55 else "car"
        foot = rng.uniform(horizon + 0.15 * (height - horizon), 0.98 * height)
        depth = (foot - horizon) / (height - horizon)
        if kind == "person":
            h = depth * 0.55 * height + 10
            w = 0.38 * h
            temperature = rng.uniform(195, 235)
        else:
            w = depth * 0.4 * width + 14
            h = 0.5 * w
            temperature = rng.uniform(140, 180)
        cx = rng.uniform(w / 2, width - w / 2)
        r, g, b = (float(c) for c in rng.uniform(0.15, 0.95, size=3))
        objects.append(_Object(kind, cx, foot - h / 2, w, h, vis != "vi", vis != "ir", temperature, (r, g, b)))
    return sorted(objects, key=lambda o: o.cy + o.h / 2)


def _per_pixel(inst: np.ndarray, values: list) -> np.ndarray:
    """Broadcast one value per object onto the instance map (background gets 0)."""
    return np.asarray([0, *values])[inst]


def _smooth_field(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, n: int, scale: float) -> np.ndarray:
    """Sum of ``n`` random low-frequency sinusoids in [-1, 1] times ``scale``."""
    h, w = yy.shape
    field = np.zeros_like(yy)
    for _ in range(n):
        fy, fx = rng.uniform(0.5, 4.0, size=2) * 2 * np.pi
        phase = rng.uniform(0, 2 * np.pi)
        field += np.sin(fy * yy / h + fx * xx / w + phase)
    return field * (scale / n)


@dataclass(frozen=True)
class _Scene:
    """One scene's layout: pixel grids, horizon row, ground and depth maps, and the objects painted far to near."""

    yy: np.ndarray
    xx: np.ndarray
    horizon: float
    ground: np.ndarray
    depth: np.ndarray  # 0 at the horizon, 1 at the bottom row
    objects: list[_Object]
    inst: np.ndarray  # 0 background, k+1 object k (occlusion applied)
    shading: np.ndarray  # squared normalised radius inside each object, clipped to [0, 1]
    shapes: list[np.ndarray]  # each object's full mask (before occlusion)

    @property
    def size(self) -> tuple[int, int]:
        return self.yy.shape


def _scene(rng: np.random.Generator, height: int, width: int) -> _Scene:
    """A random horizon and objects, painted far to near into the instance map."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = rng.uniform(0.3, 0.45) * height
    objects = _objects(rng, height, width, horizon)
    inst = np.zeros((height, width), np.int32)
    shading = np.zeros((height, width), np.float32)
    shapes = []
    for k, obj in enumerate(objects):
        mask, r2 = _shape(obj, yy, xx)
        inst[mask] = k + 1
        shading[mask] = r2[mask]
        shapes.append(mask)
    depth = np.clip((yy - horizon) / (height - horizon), 0.0, 1.0)
    return _Scene(yy, xx, horizon, yy >= horizon, depth, objects, inst, np.clip(shading, 0.0, 1.0), shapes)


def _infrared(rng: np.random.Generator, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """Cool sky, warmer ground, smooth structure, warm objects, blur and sensor noise: the uint8 image and
    the mask of the warm (infrared-visible) objects."""
    yy, xx, objects, inst = scene.yy, scene.xx, scene.objects, scene.inst
    ir = np.where(scene.ground, 70 + 40 * scene.depth, 35 + 12 * yy / max(scene.horizon, 1.0))
    ir = ir + _smooth_field(rng, yy, xx, 3, 8.0)
    warm = _per_pixel(inst, [o.in_ir for o in objects]).astype(bool)
    ir = np.where(warm, _per_pixel(inst, [o.temperature for o in objects]) - 35 * scene.shading, ir)
    ir = cv2.GaussianBlur(ir.astype(np.float32), (0, 0), 1.0)
    ir = ir + rng.normal(0, 2.5, ir.shape) + rng.normal(0, 1.5, (1, scene.size[1]))
    return np.clip(np.round(ir), 0, 255).astype(np.uint8), warm


def _albedo(rng: np.random.Generator, scene: _Scene) -> np.ndarray:
    """Linear RGB albedo (H, W, 3): a dusk sky, a textured road with a dashed lane, the objects' colours shaded."""
    (height, width), yy, xx, depth = scene.size, scene.yy, scene.xx, scene.depth
    sky = np.stack([0.10 + 0.05 * yy / height, 0.12 + 0.05 * yy / height, 0.22 + 0.04 * yy / height], -1)
    texture = _smooth_field(rng, yy, xx, 5, 0.06) + cv2.GaussianBlur(
        rng.normal(0, 0.05, (height, width)).astype(np.float32), (0, 0), 0.8
    )
    road = (0.33 + texture)[..., None] * np.ones(3, np.float32)
    lane = scene.ground & (np.abs(xx - width / 2) < 1 + 3 * depth) & (np.sin(yy * 0.3 / (depth + 0.1)) > 0)
    albedo = np.where(scene.ground[..., None], road, sky)
    albedo = np.where(lane[..., None], 0.85, albedo)
    colours = np.asarray([(0.0, 0.0, 0.0), *[o.colour for o in scene.objects]], np.float32)[scene.inst]
    return np.where((scene.inst > 0)[..., None], colours * (1 - 0.3 * scene.shading)[..., None], albedo)


def _illumination(rng: np.random.Generator, scene: _Scene) -> np.ndarray:
    """Low light (H, W): ambient plus one to three light pools, with infrared-only objects standing in a pool of
    darkness (flat core, soft edge) about twice their size."""
    (height, width), yy, xx = scene.size, scene.yy, scene.xx
    light = np.full((height, width), 0.35, np.float32)
    for _ in range(int(rng.integers(1, 4))):
        ly, lx = rng.uniform(scene.horizon, height), rng.uniform(0, width)
        sigma = rng.uniform(0.1, 0.25) * width
        light += 1.5 * np.exp(-((yy - ly) ** 2 + (xx - lx) ** 2) / (2 * sigma * sigma))
    darkness = np.zeros((height, width), np.float32)
    for obj in scene.objects:
        if not obj.in_vi:
            d2 = ((xx - obj.cx) / obj.w) ** 2 + ((yy - obj.cy) / obj.h) ** 2
            darkness = np.maximum(darkness, np.exp(-((d2 / 1.2) ** 3)))
    light *= rng.uniform(0.15, 0.3) * (1 - 0.995 * darkness)
    return light


def _visible(rng: np.random.Generator, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """The dim, gamma-encoded RGB view (uint8) with a crushed black level, and the mask of the objects seen in it:
    lit objects, minus the parts that the darkness leaves too dim to make out."""
    albedo = _albedo(rng, scene)
    light = _illumination(rng, scene)
    linear = np.clip(albedo * light[..., None], 0.0, 1.0)
    encoded = (linear ** (1 / 2.2) - _BLACK_LEVEL) / (1 - _BLACK_LEVEL)
    lit = _per_pixel(scene.inst, [o.in_vi for o in scene.objects]).astype(bool) & (encoded.max(-1) > _SEEN_LEVEL)
    encoded = encoded + rng.normal(0, 0.01, encoded.shape)
    return np.clip(np.round(encoded * 255), 0, 255).astype(np.uint8), lit


def _yolo_labels(scene: _Scene) -> str:
    """One YOLO line ``cls cx cy w h`` (normalised) per object left visible by occlusion: its full shape's box."""
    height, width = scene.size
    present = np.bincount(scene.inst.ravel(), minlength=len(scene.objects) + 1)[1:] > 0
    lines = []
    for obj, mask, shown in zip(scene.objects, scene.shapes, present):
        if not shown:
            continue
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        x0, x1, y0, y1 = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
        lines.append(
            f"{DET_CLASSES[obj.kind]} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
            f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"
        )
    return "".join(f"{line}\n" for line in lines)


def _render(rng: np.random.Generator, height: int, width: int) -> dict[str, np.ndarray | str]:
    """One scene: infrared, visible, seg map, per-modality masks and YOLO label text."""
    scene = _scene(rng, height, width)
    ir, warm = _infrared(rng, scene)
    vi, lit = _visible(rng, scene)
    return {
        "ir": ir,
        "vi": vi,
        "seg": _per_pixel(scene.inst, [SEG_CLASSES[o.kind] for o in scene.objects]).astype(np.uint8),
        "mask_ir": warm.astype(np.uint8) * 255,
        "mask_vi": lit.astype(np.uint8) * 255,
        "det": _yolo_labels(scene),
    }


def _manifest(seed: int, counts: dict[str, int], height: int, width: int) -> str:
    return "\n".join(
        [
            "# synthetic: generated, not real data",
            "",
            "Made by `occo.data.synthetic.make_synthetic` for tests and smoke runs; not for benchmark numbers.",
            "",
            f"- seed: {seed}",
            f"- pairs: {', '.join(f'{split} {n}' for split, n in counts.items())}",
            f"- size: {width}x{height} (WxH); infrared 8-bit grey PNG, visible 8-bit RGB PNG",
            "- `labels/seg/<id>.png`: uint8 MSRS class ids " + ", ".join(f"{v} {k}" for k, v in SEG_CLASSES.items()),
            "- `labels/det/<id>.txt`: YOLO `cls cx cy w h` (normalised); "
            + ", ".join(f"{v} {k}" for k, v in DET_CLASSES.items()),
            "- `masks/{ir,vi}/<id>.png`: 0/255 masks of objects seen in that modality",
            "",
        ]
    )


def make_synthetic(
    out_root: Path,
    *,
    n_train: int = SYNTHETIC.n_train,
    n_test: int = SYNTHETIC.n_test,
    height: int = SYNTHETIC.height,
    width: int = SYNTHETIC.width,
    seed: int = SYNTHETIC.seed,
) -> None:
    """Write a synthetic set to ``out_root`` (replaced atomically), deterministic for ``seed``.

    Layout: ``{train,test}/{ir,vi}/<id>.png``, ``<split>/labels/{seg,det}/<id>.{png,txt}``,
    ``<split>/masks/{ir,vi}/<id>.png`` and ``MANIFEST.md``; ids are ``syn_000``, ``syn_001``, ...
    """
    out_root = Path(out_root)
    counts = {"train": n_train, "test": n_test}
    rng = np.random.default_rng(seed)
    with atomic_dir(out_root) as tmp:
        with tqdm(total=n_train + n_test, desc="synthetic", unit="pair") as bar:
            index = 0
            for split, n in counts.items():
                for _ in range(n):
                    sample = _render(rng, height, width)
                    name = f"syn_{index:03d}"
                    base = tmp / split
                    save_png(base / "ir" / f"{name}.png", sample["ir"])
                    save_png(base / "vi" / f"{name}.png", sample["vi"])
                    save_png(base / "labels" / "seg" / f"{name}.png", sample["seg"])
                    save_png(base / "masks" / "ir" / f"{name}.png", sample["mask_ir"])
                    save_png(base / "masks" / "vi" / f"{name}.png", sample["mask_vi"])
                    det = base / "labels" / "det" / f"{name}.txt"
                    det.parent.mkdir(parents=True, exist_ok=True)
                    det.write_text(sample["det"], encoding="utf-8")
                    index += 1
                    bar.update()
        (tmp / "MANIFEST.md").write_text(_manifest(seed, counts, height, width), encoding="utf-8")
    log.info("wrote %d synthetic pairs (seed %d) to %s", n_train + n_test, seed, out_root)
