"""Reading params.yaml into ``Params``: every problem reported at once, one line each, never a traceback.

A line names the key, the value and what is allowed: ``train.crop = -1: should be greater than 0``; an
unknown key lists the known ones. Values are shown bounded (``reprlib``), so a huge or deeply aliased
value cannot flood the message.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from occo.config.sections import Params


class ParamsError(ValueError):
    """A params file that breaks the schema; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading floats as YAML 1.2 (and DVC, through ruamel) does: ``1e-4`` is a number."""


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:\d[\d_]*\.?[\d_]*(?:[eE][-+]?\d+)?|\.\d[\d_]*(?:[eE][-+]?\d+)?|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$"
    ),
    list("-+0123456789."),
)


def _model_of(kind: Any) -> Any:
    """The model, mapping or list type inside ``kind``'s Annotated/Optional wrappers (or ``kind``)."""
    for _ in range(8):
        origin = get_origin(kind)
        args = [a for a in get_args(kind) if a is not type(None)]
        if isinstance(kind, type) and issubclass(kind, BaseModel) or origin in (dict, list):
            return kind
        if not args:
            return kind
        kind = next(
            (a for a in args if _model_of(a) is not a or isinstance(a, type) and issubclass(a, BaseModel)), args[0]
        )
    return kind


def _field_type(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def keys_at(loc: Sequence[str | int], schema: Any = Params) -> list[str] | None:
    """The keys the schema knows at ``loc`` (a section, a mapping entry, …); None where no section is."""
    kind = _model_of(schema)
    for part in loc:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            kind = _field_type(kind, str(part))
        elif get_origin(kind) is dict:
            kind = get_args(kind)[1]
        elif get_origin(kind) is list:
            kind = get_args(kind)[0]
        else:
            return None
        kind = _model_of(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return sorted(info.alias or name for name, info in kind.model_fields.items())
    return None


def dotted(loc: Sequence[str | int]) -> str:
    """``('fuse', 'datasets', 2)`` → ``fuse.datasets[2]``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxstring, _REPR.maxother = 3, 6, 8, 60, 60


def show(value: Any) -> str:
    """A bounded ``repr(value)``: at most 80 characters, nested containers elided."""
    text = _REPR.repr(value)
    return text if len(text) <= 80 else f"{text[:76]} ..."


def allowed(error: ErrorDetails) -> str:
    """What a schema error says is allowed (pydantic's message, "Input should …" → "should …")."""
    return re.sub(r"^(Input|String|Value|List|Dictionary) should", "should", error["msg"])


def describe(error: ErrorDetails) -> str:
    """One schema error as ``<dotted.key> = <value>: <what is allowed>``."""
    loc = [part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-"))]
    if not loc:  # a check across sections: its message names the keys
        return allowed(error)
    if error["type"] == "missing":
        return f"{dotted(loc)}: missing (required)"
    if error["type"] == "extra_forbidden":
        known = keys_at(loc[:-1]) or []
        return f"{dotted(loc)} = {show(error['input'])}: unknown key; known keys: {', '.join(known)}"
    return f"{dotted(loc)} = {show(error['input'])}: {allowed(error)}"


def validate_params(raw: Any, source: str = "params.yaml") -> Params:
    """``raw`` (a parsed params file) as ``Params``; ParamsError listing every problem. Absent keys take
    their defaults."""
    if not isinstance(raw, Mapping):
        raise ParamsError([f"{source}: should be a mapping of sections, got {show(raw)}"])
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError([f"{source} {describe(e)}" for e in err.errors()]) from None


def read_yaml(path: Path) -> Any:
    """A YAML file parsed as DVC reads it; ParamsError (one line) for an unreadable or malformed file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ParamsError([f"{path}: cannot read ({err.strerror or err})"]) from None
    try:
        return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError([f"{path}: not valid YAML{where}: {problem}"]) from None


def load_params(path: Path) -> Params:
    """Read and validate a params file; ParamsError (one line each) for an unreadable file or bad entries."""
    raw = read_yaml(Path(path))
    return validate_params({} if raw is None else raw, str(path))


def as_dict(cfg: BaseModel) -> dict[str, Any]:
    """A config as plain data, keys as params.yaml spells them (``import``, not ``import_``)."""
    return cfg.model_dump(mode="json", by_alias=True)


def override(cfg: Params, changes: Mapping[str, Any]) -> Params:
    """``cfg`` with dotted keys set (``{"train.crop": 64}``) and validated again: what ``dvc exp run -S`` does."""
    raw = as_dict(cfg)
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return validate_params(raw, "override")


def check_value(kind: Any, value: Any, name: str) -> Any:
    """``value`` validated as one schema type (the command-line flags share the params' types); else
    ValueError ``<name> = <value>: <what is allowed>``."""
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError as err:
        raise ValueError(f"{name} = {show(value)}: {allowed(err.errors()[0])}") from None
