"""The configure form's model, generated from the pydantic preset schema (no Textual here).

`form_fields(preset)` walks `workbench.config.SECTIONS` (and the preset's top-level fields) and returns
one `FieldSpec` per input: Literal fields become choices, booleans switches, ints and floats number
inputs carrying their ge/gt/le/lt bounds, free-form `model.args`/`data.args` one typed input per key
the preset has. `validate_form(values)` types the raw values, validates them with the same schema the
CLI uses and maps each pydantic error back to the field it belongs to.
"""

from __future__ import annotations

import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types
import tomli_w
from pydantic import ValidationError

from workbench.config import SECTIONS, Preset
from workbench.presets import diff_dicts, parse_value
from workbench.registry import DATASETS, MODELS

SECTION_TITLES = {
    "preset": "Preset",
    "model": "Model",
    "data": "Data",
    "optim": "Optimizer",
    "schedule": "Schedule",
    "train": "Training",
}
# Kinds are plain strings in the schema, checked against these registries by its validators.
KIND_CHOICES = {"model": MODELS, "data": DATASETS}
# Top-level fields that are sub-sections, not inputs.
_SUBSECTIONS = set(SECTIONS)

Kind = Literal["choice", "bool", "integer", "number", "text", "optional_text", "literal"]


@dataclass(frozen=True)
class FieldSpec:
    """One input of the form: where its value lives in the preset and how to edit it."""

    path: str  # dotted key in the preset: "optim.lr", "model.args.hidden", "name"
    section: str  # "preset" for top-level keys, else a SECTIONS name
    label: str
    kind: Kind
    description: str
    choices: tuple[str, ...] = ()
    bounds: str = ""  # "> 0, <= 100"

    @property
    def widget_id(self) -> str:
        """A DOM id derived from the path (args keys may hold characters ids can't)."""
        return "f-" + re.sub(r"[^A-Za-z0-9_-]", "_", self.path.replace(".", "--"))


def _bounds(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        for cls, attr, sign in ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", ">="),
                                (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "<=")):
            if isinstance(item, cls):
                bound = getattr(item, attr)
                parts.append(f"{sign} {bound:,}" if isinstance(bound, int) else f"{sign} {bound:g}")
    return ", ".join(parts)


def _kind_of(annotation: Any) -> tuple[Kind, tuple[str, ...]]:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "choice", tuple(str(a) for a in typing.get_args(annotation))
    if annotation is bool:
        return "bool", ()
    if annotation is int:
        return "integer", ()
    if annotation is float:
        return "number", ()
    if annotation is str:
        return "text", ()
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if args == [str]:
            return "optional_text", ()
    return "literal", ()


def _spec(section: str, path: str, name: str, info: Any) -> FieldSpec:
    kind, choices = _kind_of(info.annotation)
    if name == "kind" and section in KIND_CHOICES:
        kind, choices = "choice", tuple(sorted(KIND_CHOICES[section])) + ("custom",)
    return FieldSpec(path=path, section=section, label=name, kind=kind, description=info.description or "",
                     choices=choices, bounds=_bounds(list(info.metadata)))


def form_fields(preset: Preset) -> list[FieldSpec]:
    """Every input of the form, in section order; builder args expanded from the preset's own keys."""
    specs: list[FieldSpec] = []
    for name, info in Preset.model_fields.items():
        if name not in _SUBSECTIONS:
            specs.append(_spec("preset", name, name, info))
    for section, model in SECTIONS.items():
        for name, info in model.model_fields.items():
            if name == "args":
                args = getattr(preset, section).args
                for key in args:
                    specs.append(FieldSpec(path=f"{section}.args.{key}", section=section, label=f"args.{key}",
                                           kind="literal", description=f"{section} builder argument {key!r} "
                                           f"(a TOML value: 128, [128, 64], \"relu\", true)"))
                continue
            specs.append(_spec(section, f"{section}.{name}", name, info))
    return specs


# -- values <-> text ------------------------------------------------------------------------------
def get_path(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def toml_literal(value: Any) -> str:
    """A value as one line of TOML (bare words stay bare when that round-trips through parse_value)."""
    if isinstance(value, str):
        if value and value == value.strip() and parse_value(value) == value:
            return value
        return tomli_w.dumps({"v": value}).partition("=")[2].strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items()) + "}"
    return str(value)


def _inline(value: Any) -> str:
    """Inside arrays and tables strings are always quoted."""
    if isinstance(value, str):
        return tomli_w.dumps({"v": value}).partition("=")[2].strip()
    return toml_literal(value)


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _inline(key)


def to_text(spec: FieldSpec, value: Any) -> str:
    """The text an input shows for a value."""
    if value is None:
        return ""
    if spec.kind in ("text", "optional_text"):
        return str(value)
    if spec.kind == "number" and isinstance(value, float):
        return repr(value) if not value.is_integer() or abs(value) >= 1e16 else f"{value:.1f}"
    if spec.kind in ("integer", "number"):
        return str(value)
    return toml_literal(value)


def parse_text(spec: FieldSpec, text: str) -> Any:
    """Type an input's text for validation; what can't be typed stays text so the schema names the problem."""
    stripped = text.strip()
    if spec.kind == "text":
        return text
    if spec.kind == "optional_text":
        return stripped or None
    if spec.kind in ("integer", "number"):
        if not stripped:
            return None
        return parse_value(stripped)
    if spec.kind == "literal":
        if not stripped:
            return None
        value = parse_value(stripped)
        if isinstance(value, str) and "," in value and not stripped.startswith(("[", "{", '"', "'")):
            value = parse_value(f"[{stripped}]")  # "0.9, 0.999" means a list
        return value
    return text


# -- validation -----------------------------------------------------------------------------------
@dataclass
class FormResult:
    """The outcome of validating the form: the preset when valid, else problems by field path."""

    preset: Preset | None
    errors: dict[str, str]  # path (or section/"preset") -> why
    data: dict[str, Any]


def _field_for(loc: tuple[Any, ...], paths: set[str]) -> str:
    """The longest known field path that a pydantic error location starts with."""
    parts = [str(p) for p in loc]
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in paths:
            return candidate
    return parts[0] if parts else "preset"


def build_data(specs: list[FieldSpec], values: dict[str, Any]) -> dict[str, Any]:
    """Raw preset data from typed values by path (None for an optional field leaves it out)."""
    data: dict[str, Any] = {section: {} for section in SECTIONS}
    for section in ("model", "data"):
        data[section]["args"] = {}
    for spec in specs:
        value = values.get(spec.path)
        if value is None and spec.kind == "optional_text":
            continue
        set_path(data, spec.path, value)
    return data


def validate_form(specs: list[FieldSpec], values: dict[str, Any]) -> FormResult:
    """Validate typed form values with the preset schema; errors keyed by the field they belong to."""
    data = build_data(specs, values)
    errors: dict[str, str] = {}
    by_path = {spec.path: spec for spec in specs}
    for spec in specs:
        value = values.get(spec.path)
        if spec.kind in ("integer", "number") and value is None:
            errors[spec.path] = "a value is required"
        elif _has_non_finite(value):
            errors[spec.path] = "must be a finite number"
    try:
        preset = Preset.model_validate(data)
    except ValidationError as error:
        for item in error.errors():
            path = _field_for(tuple(item["loc"]), set(by_path))
            message = item["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, "):]
            if item["type"] == "extra_forbidden":
                message = "unknown key"
            errors.setdefault(path, message)
        return FormResult(None, errors, data)
    return FormResult(None if errors else preset, errors, data)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


def form_diff(base: Preset, data: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose form value differs from the preset it started from."""
    current = dict(data)
    base_data = base.model_dump(mode="json")
    for section in SECTIONS:  # optional fields left empty are None in the dump
        for key, value in base_data.get(section, {}).items():
            if value is None and key not in current.get(section, {}):
                current.setdefault(section, {})[key] = None
    return diff_dicts(base_data, _jsonish(current))


def _jsonish(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonish(v) for v in value]
    if isinstance(value, list):
        return [_jsonish(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonish(v) for k, v in value.items()}
    return value
