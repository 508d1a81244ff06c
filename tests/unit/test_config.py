"""Preset validation: every class of bad input is one clear line naming the key, and good input is typed."""

from __future__ import annotations

import pytest

from workbench.config import validate_preset
from workbench.errors import ConfigError
from workbench.presets import apply_overrides, discover_presets, load_preset, parse_value, preset_to_toml, save_preset


def problems(fn, *args, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    return info.value.problems


def test_packaged_presets_load_and_default_exists():
    presets = discover_presets()
    assert "mlp-quadrants" in presets and "mlp-tabular-binary" in presets
    preset = load_preset("mlp-quadrants")
    assert preset.model.kind == "mlp" and preset.task == "classification"


def test_unknown_key_anywhere_is_named():
    assert problems(validate_preset, {"train": {"batchsize": 3}}) == ["train.batchsize: unknown key"]
    assert problems(validate_preset, {"colour": "red"}) == ["colour: unknown key"]


def test_wrong_type_and_out_of_range_are_named():
    lines = problems(validate_preset, {"train": {"batch_size": "many"}, "optim": {"lr": -1}})
    assert any(line.startswith("train.batch_size:") for line in lines)
    assert any(line.startswith("optim.lr:") and "greater than 0" in line for line in lines)


def test_non_finite_numbers_rejected():
    assert "optim.lr" in problems(validate_preset, {"optim": {"lr": float("nan")}})[0]
    assert "not a finite number" in problems(validate_preset, {"train": {"grad_clip": float("inf")}})[0]


def test_unknown_model_and_data_kind():
    line = problems(validate_preset, {"model": {"kind": "transformer9000"}})[0]
    assert line.startswith("model.kind: unknown model kind 'transformer9000'")
    assert problems(validate_preset, {"data": {"kind": "nope"}})[0].startswith("data.kind: unknown data kind")


@pytest.mark.parametrize("section", ["model", "data"])
def test_custom_needs_target_in_file_colon_function_form(section):
    """Both builder sections share one set of validators (config.BuilderSection)."""
    assert problems(validate_preset, {section: {"kind": "custom"}}) == [
        f'{section}: kind = "custom" needs target = "file.py:function"']
    assert problems(validate_preset, {section: {"kind": "custom", "target": "x.py"}}) == [
        f"{section}.target: must look like 'file.py:function'"]


def test_each_choice_list_is_the_fields_own_type():
    """The tuples the rest of the code reads, the schema's checks and the form's choices are one list."""
    from workbench.config import LOSSES, OPTIMIZERS, TASKS, OptimConfig, Preset, TrainConfig
    from workbench.tui.form import form_fields

    choices = {spec.path: spec.choices for spec in form_fields(load_preset("mlp-quadrants"))}
    assert choices["optim.name"] == OPTIMIZERS and choices["task"] == TASKS and choices["train.loss"] == LOSSES
    assert "muon" in OPTIMIZERS and OptimConfig(name="muon").name == "muon"
    with pytest.raises(Exception, match="'sgd', 'adam', 'adamw', 'rmsprop' or 'muon'"):
        OptimConfig(name="lion")
    assert Preset.model_fields["task"].default in TASKS and TrainConfig().loss in LOSSES


def test_missing_and_malformed_preset_files(tmp_path):
    assert "not found" in problems(load_preset, str(tmp_path / "missing.toml"))[0]
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nbatch_size = 3")
    assert "malformed TOML" in problems(load_preset, str(bad))[0]
    assert "preset 'nope' not found" in problems(load_preset, "nope")[0]


def test_custom_target_missing_file_or_function(tmp_path):
    from workbench.builders import check_preset

    preset = validate_preset({"model": {"kind": "custom", "target": str(tmp_path / "m.py") + ":build"}})
    assert "not found" in problems(check_preset, preset)[0]
    (tmp_path / "m.py").write_text("def other():\n    pass\n")
    assert "has no function 'build'" in problems(check_preset, preset)[0]


def test_builder_args_checked_against_signature():
    from workbench.builders import check_preset

    preset = load_preset("mlp-quadrants", ["model.args.hiden=[3]"])
    assert problems(check_preset, preset)[0].startswith("model.args.hiden: unknown argument (accepted:")


def test_overrides_are_typed_by_schema():
    preset = load_preset("mlp-quadrants", ["optim.lr=1e-2", "train.max_steps=7", "train.compile=true",
                                           "optim.betas=[0.8, 0.9]", "model.args.hidden=[8, 8]"])
    assert preset.optim.lr == 0.01 and preset.train.max_steps == 7 and preset.train.compile is True
    assert preset.optim.betas == (0.8, 0.9) and preset.model.args["hidden"] == [8, 8]
    # A quoted number in TOML stays a string, and pydantic (lax) accepts numeric strings for numbers.
    assert load_preset("mlp-quadrants", ["optim.name=sgd"]).optim.name == "sgd"


def test_override_errors():
    assert "unknown key" in problems(apply_overrides, {}, ["optim.learning_rate=1"])[0]
    assert "expected section.key=value" in problems(apply_overrides, {}, ["optim.lr"])[0]
    assert "unknown key" in problems(apply_overrides, {}, ["nosection.x=1"])[0]
    assert problems(load_preset, "mlp-quadrants", ["train.batch_size=0"])[0].startswith("mlp-quadrants: train.batch_size")


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("1e-3") == 0.001 and parse_value("true") is True
    assert parse_value("adamw") == "adamw" and parse_value('"x y"') == "x y" and parse_value("[1, 2]") == [1, 2]


def test_saved_preset_round_trips(tmp_path):
    preset = load_preset("mlp-quadrants", ["optim.lr=0.005"]).model_copy(update={"name": "mine"})
    path = save_preset(preset, tmp_path)
    assert load_preset(str(path)) == preset
    assert "lr = 0.005" in preset_to_toml(preset)


def test_relative_custom_target_resolves_against_preset_folder(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "model.py").write_text("import torch\ndef build(n=2):\n    return torch.nn.Linear(2, 4)\n")
    (folder / "mine.toml").write_text('[model]\nkind = "custom"\ntarget = "model.py:build"\n')
    preset = load_preset(str(folder / "mine.toml"))
    assert preset.model.target == f"{folder / 'model.py'}:build"


def test_every_field_is_documented():
    from workbench.config import SECTIONS, Preset

    for model in [Preset, *SECTIONS.values()]:
        for name, field in model.model_fields.items():
            if model is Preset and name in SECTIONS:
                continue
            assert field.description, f"{model.__name__}.{name} has no docstring"
