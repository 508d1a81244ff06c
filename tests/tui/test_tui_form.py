"""The configure form is generated from the preset schema and validated by it."""

from __future__ import annotations

from workbench.config import SECTIONS, Preset
from workbench.presets import load_preset
from workbench.tui.form import FieldSpec, form_diff, form_fields, get_path, parse_text, to_text, validate_form


def form_values(preset: Preset, specs: list[FieldSpec]) -> dict:
    data = preset.model_dump(mode="json")
    return {s.path: get_path(data, s.path) if s.kind in ("choice", "bool") else parse_text(s, to_text(s, get_path(data, s.path)))
            for s in specs}


def test_every_schema_field_has_an_input_of_the_right_kind():
    preset = load_preset("mlp-quadrants")
    specs = {s.path: s for s in form_fields(preset)}
    for section, model in SECTIONS.items():
        for name in model.model_fields:
            if name != "args":
                assert f"{section}.{name}" in specs, f"{section}.{name} missing from the form"
    assert specs["optim.name"].kind == "choice" and "adamw" in specs["optim.name"].choices
    assert specs["optim.nesterov"].kind == "bool"
    assert specs["train.batch_size"].kind == "integer" and specs["train.batch_size"].bounds.startswith(">= 1")
    assert specs["optim.lr"].kind == "number" and specs["optim.lr"].bounds == "> 0, <= 100"
    assert specs["optim.lr"].description == "Base learning rate."
    assert specs["model.kind"].kind == "choice" and "mlp" in specs["model.kind"].choices
    assert specs["model.args.hidden"].kind == "literal"  # args keys come from the preset itself
    assert specs["task"].section == "preset"


def test_unchanged_form_validates_to_the_same_preset():
    preset = load_preset("mlp-quadrants")
    specs = form_fields(preset)
    result = validate_form(specs, form_values(preset, specs))
    assert result.errors == {}
    assert result.preset == preset
    assert form_diff(preset, result.data) == {}


def test_invalid_values_are_reported_on_their_field_with_the_schema_reason():
    preset = load_preset("mlp-quadrants")
    specs = form_fields(preset)
    by_path = {s.path: s for s in specs}
    values = form_values(preset, specs)
    values["optim.lr"] = parse_text(by_path["optim.lr"], "-1")
    values["train.batch_size"] = parse_text(by_path["train.batch_size"], "lots")
    values["optim.betas"] = parse_text(by_path["optim.betas"], "0.9, 1.5")
    values["optim.eps"] = parse_text(by_path["optim.eps"], "nan")
    values["train.max_steps"] = parse_text(by_path["train.max_steps"], "")
    result = validate_form(specs, values)
    assert result.preset is None
    assert "greater than 0" in result.errors["optim.lr"]
    assert "valid integer" in result.errors["train.batch_size"]
    assert result.errors["optim.betas"] == "each beta must be in [0, 1)"
    assert result.errors["optim.eps"] == "must be a finite number"
    assert result.errors["train.max_steps"] == "a value is required"


def test_diff_names_changed_keys_with_old_and_new_values():
    preset = load_preset("mlp-quadrants")
    specs = form_fields(preset)
    by_path = {s.path: s for s in specs}
    values = form_values(preset, specs)
    values["optim.lr"] = parse_text(by_path["optim.lr"], "1e-2")
    values["model.args.hidden"] = parse_text(by_path["model.args.hidden"], "[64, 32]")
    values["model.args.activation"] = parse_text(by_path["model.args.activation"], "gelu")
    result = validate_form(specs, values)
    assert result.errors == {}
    assert form_diff(preset, result.data) == {
        "model.args.activation": ("relu", "gelu"),
        "model.args.hidden": ([128, 128], [64, 32]),
        "optim.lr": (0.003, 0.01),
    }
    assert result.preset.model.args["hidden"] == [64, 32]


def test_literal_text_round_trips():
    preset = load_preset("mlp-quadrants")
    spec = next(s for s in form_fields(preset) if s.path == "optim.group_lr")
    assert parse_text(spec, to_text(spec, {"layer4": 1e-4, "fc": 1e-3})) == {"layer4": 1e-4, "fc": 1e-3}
    arg = FieldSpec("model.args.norm", "model", "args.norm", "literal", "")
    assert to_text(arg, "layernorm") == "layernorm" and parse_text(arg, "layernorm") == "layernorm"
    assert to_text(arg, "true") == '"true"' and parse_text(arg, '"true"') == "true"
