"""Hostile input: fuzzed presets and --set overrides either validate or give a clear ConfigError, never a
traceback; the CLI turns them into exit 2 without recording anything."""

from __future__ import annotations

import math

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.config import SECTIONS, Preset, validate_preset
from workbench.errors import ConfigError
from workbench.presets import apply_overrides, load_preset, parse_value

REAL_KEYS = [f"{section}.{key}" for section, model in SECTIONS.items() for key in model.model_fields]
scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.text(max_size=30), st.just("adamw"), st.just("cross_entropy"),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
keys = st.one_of(st.sampled_from(REAL_KEYS), st.text(max_size=20),
                 st.builds(lambda a, b: f"{a}.{b}", st.sampled_from(list(SECTIONS)), st.text(max_size=12)))
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def clear(error: ConfigError) -> None:
    """A clear error: at least one problem, each one line naming something."""
    assert error.problems
    for problem in error.problems:
        assert problem and "\n" not in problem and "Traceback" not in problem


@pytest.mark.slow
@FUZZ
@given(key=keys, raw=st.one_of(st.text(max_size=40), values.map(lambda v: repr(v))))
def test_fuzzed_overrides_validate_or_fail_clearly(key, raw):
    try:
        preset = load_preset("mlp-quadrants", [f"{key}={raw}"])
    except ConfigError as error:
        clear(error)
        return
    assert isinstance(preset, Preset)
    for number in (preset.optim.lr, preset.optim.weight_decay, preset.train.grad_clip):
        assert math.isfinite(number)


def toml_safe(value):
    """TOML has no null and needs string keys; drop what it cannot express."""
    if isinstance(value, dict):
        return {str(k): toml_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [toml_safe(v) for v in value if v is not None]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return float(value)
    return value


documents = st.dictionaries(
    st.one_of(st.sampled_from(["name", "description", "task", "watch", *SECTIONS]), st.text(max_size=10)),
    st.one_of(values, st.dictionaries(st.one_of(st.sampled_from(REAL_KEYS).map(lambda k: k.split(".")[1]),
                                                st.text(max_size=10)), values, max_size=6)),
    max_size=6,
)


@pytest.mark.slow
@FUZZ
@given(document=documents)
def test_fuzzed_preset_files_validate_or_fail_clearly(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("fuzz") / "p.toml"
    try:
        text = tomli_w.dumps(toml_safe(document))
    except (TypeError, ValueError):
        return  # not expressible as TOML at all
    path.write_text(text, encoding="utf-8")
    try:
        load_preset(str(path))
    except ConfigError as error:
        clear(error)


@FUZZ
@given(blob=st.binary(max_size=200))
def test_random_bytes_as_a_preset_fail_clearly(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("bytes") / "p.toml"
    path.write_bytes(blob)
    try:
        load_preset(str(path))
    except ConfigError as error:
        clear(error)


def test_deeply_nested_tables_fail_clearly(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("[model.args]\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    try:
        load_preset(str(path))
    except ConfigError as error:
        clear(error)
    try:
        apply_overrides({}, ["model.args.x=" + "[" * 3000 + "]" * 3000])
    except ConfigError as error:
        assert "nested too deeply" in error.problems[0]
    else:
        raise AssertionError("a 3000-deep override was accepted")


def test_nan_and_inf_literals_are_refused():
    for literal in ("nan", "inf", "-inf", "+nan"):
        try:
            load_preset("mlp-quadrants", [f"optim.lr={literal}"])
        except ConfigError as error:
            assert "optim.lr" in error.problems[0]
        else:
            raise AssertionError(f"{literal} accepted")
    assert math.isnan(parse_value("nan"))


def test_names_cannot_escape_the_runs_dir():
    for name in ("../../etc/passwd", "a/b", "..", ".hidden", "x" * 200, "ü-name", ""):
        try:
            validate_preset({"name": name})
        except ConfigError as error:
            assert error.problems[0].startswith("name:")
        else:
            raise AssertionError(f"name {name!r} accepted")


def test_cli_fuzz_cases_exit_2_and_record_nothing(capsys, runs_dir):
    from workbench.cli import main

    hostile = ["train.batch_size=1e999", "optim.lr=nan", "train.max_steps=99999999999999999999",
               "name='../../x'", "model.args=3", "train.device=tpu", "optim.betas=[2, 3]", "train=1",
               "\u202etrain.seed=1", "optim.lr=[[[[1]]]]"]
    for override in hostile:
        assert main(["train", "mlp-quadrants", "--set", override]) == 2, override
        err = capsys.readouterr().err
        assert err.startswith("workbench: error:") and "Traceback" not in err, (override, err)
    assert not (runs_dir / "workbench.db").exists()


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(["hidden", "depth", "dropout", "activation", "norm"]),
       raw=st.one_of(values.map(repr), st.text(max_size=12)))
def test_fuzzed_builtin_model_args_build_or_fail_clearly(key, raw):
    import torch

    from workbench.builders import build_data, build_model, check_preset

    try:
        preset = load_preset("mlp-quadrants", [f"model.args.{key}={raw}", "data.args.train_size=64",
                                               "data.args.val_size=16"])
        check_preset(preset)
        data = build_data(preset)
        model = build_model(preset, data.info)
    except ConfigError as error:
        clear(error)
        return
    assert isinstance(model, torch.nn.Module)
