"""COCO-pretrained YOLO weights, read without running code from the file.

ultralytics' checkpoints pickle the whole model (``{"model": DetectionModel, "ema": ..., "train_args": ...}``), and
ultralytics unpickles them with ``torch.load(weights_only=False)``: a file placed by hand in
``models/pretrained/`` or named by ``detect.weights`` could run any code. Here the file is read with
``torch.load(weights_only=True)`` allowing only the classes it names that are torch or ultralytics network modules
(``nn.Module`` subclasses under ``torch.nn.modules``/``ultralytics.nn``, rebuilt without calling their ``__init__``)
and the few plain data types ultralytics stores beside them; anything else is refused in one line
(:func:`occo.data.io.read_checkpoint`). Only the tensors are taken from what it holds (read from the modules'
``_parameters``/``_buffers`` without calling a method of theirs), loaded into a network built from ultralytics'
own ``yolov5<size>.yaml``, and ultralytics is handed that network, never the file.
"""

from __future__ import annotations

import importlib
import logging
import pathlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from occo.data.io import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)

MODULE_PACKAGES = ("torch.nn.modules.", "ultralytics.nn.")
"""Where the network module classes of a pickled network may come from."""
LOSS_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal")
"""Modules whose plain classes older checkpoints pickle with the network (its loss, ``criterion``): rebuilt from
their attributes alone, as the module classes."""
MIN_FIT = 0.5
"""Share of the YAML network's tensors a checkpoint must fill (by name and shape): a file of another model size
fills almost none."""
REMEDY = (
    "use the registry's yolov5<size>u.pt (delete the file in models/pretrained/ to download it again) or point "
    "detect.weights to an ultralytics YOLOv5u checkpoint of detect.model"
)


def _data_globals() -> dict[str, Any]:
    """The plain data types ultralytics' checkpoints store beside the network, by the names they are pickled under."""
    from ultralytics.utils import IterableSimpleNamespace

    scalar = np.float64(0).__reduce__()[0]  # numpy's scalar reconstructor
    found: dict[str, Any] = {
        "ultralytics.utils.IterableSimpleNamespace": IterableSimpleNamespace,
        "ultralytics.yolo.utils.IterableSimpleNamespace": IterableSimpleNamespace,
        "numpy.dtype": np.dtype,
        "numpy.core.multiarray.scalar": scalar,
        "numpy._core.multiarray.scalar": scalar,
        "pathlib.PosixPath": pathlib.PosixPath,
        "pathlib._local.PosixPath": pathlib.PosixPath,
    }
    return found


def module_class(name: str) -> type | None:
    """The class pickled as ``name`` (``package.module.Class``) when it is a network module class of
    :data:`MODULE_PACKAGES` or a class defined in :data:`LOSS_MODULES`, else None; only those modules are imported
    to find out."""
    module, _, attr = name.rpartition(".")
    if not (f"{module}.".startswith(MODULE_PACKAGES) or module in LOSS_MODULES):
        return None
    try:
        found = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None
    if not isinstance(found, type):
        return None
    return found if issubclass(found, nn.Module) or found.__module__ in LOSS_MODULES else None


def allowed_globals(path: Path) -> list[Any]:
    """What ``weights_only`` may rebuild from ``path``: the network classes and plain data types it names."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (OSError, RuntimeError, ValueError):  # not a zip: read_checkpoint says what it is
        return []
    data = _data_globals()
    allowed: list[Any] = []
    for name in names:
        found = data.get(name) or module_class(name)
        if found is not None:
            allowed.append((found, name))
    if "numpy.dtype" in names:  # a dtype is rebuilt through its class, which the scan of the file does not list
        allowed += [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"]
    return allowed


def module_tensors(root: nn.Module) -> dict[str, Tensor]:
    """``root``'s parameters and persistent buffers by state-dict name, read from the modules' own dicts (no method
    of an unpickled module is called)."""
    tensors: dict[str, Tensor] = {}
    stack: list[tuple[str, nn.Module]] = [("", root)]
    while stack:
        prefix, module = stack.pop()
        state = vars(module)
        transient = state.get("_non_persistent_buffers_set", set())
        for group in ("_parameters", "_buffers"):
            for name, value in (state.get(group) or {}).items():
                if isinstance(value, Tensor) and name not in transient:
                    tensors[prefix + name] = value
        for name, child in (state.get("_modules") or {}).items():
            if isinstance(child, nn.Module):
                stack.append((f"{prefix}{name}.", child))
    return tensors


def pretrained_tensors(path: Path) -> dict[str, Tensor]:
    """The tensors of the network in an ultralytics checkpoint (its ``ema`` entry, else ``model``), read without
    running code from the file; CheckpointError (one line naming the file) for anything else."""
    with torch.serialization.safe_globals(allowed_globals(path)):
        ckpt = read_checkpoint(path, remedy=REMEDY)
    model = ckpt.get("ema") if isinstance(ckpt.get("ema"), nn.Module) else ckpt.get("model")
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"{path} holds no YOLO network (no 'ema' or 'model' module): {REMEDY}")
    return module_tensors(model)


def coco_network(model: str, path: Path) -> nn.Module:
    """ultralytics' ``<model>.yaml`` network (80 COCO classes) holding the tensors of ``path``
    (:func:`pretrained_tensors`); CheckpointError when fewer than :data:`MIN_FIT` of its tensors fit."""
    from ultralytics.nn.tasks import DetectionModel

    network = DetectionModel(f"{model}.yaml", verbose=False)
    own = network.state_dict()
    tensors = pretrained_tensors(path)
    fit = {k: v for k, v in tensors.items() if k in own and v.shape == own[k].shape}
    if len(fit) < MIN_FIT * len(own):
        raise CheckpointError(
            f"{path} does not fit {model}: {len(fit)} of its network's {len(own)} tensors match by name and shape "
            f"(a checkpoint of another model size?): {REMEDY}"
        )
    network.load_state_dict(fit, strict=False)
    log.info("%s: %d of %d tensors of %s taken from %s", model, len(fit), len(own), model, path)
    return network
