"""Hostile input on `--data`: fuzzed tables (odd headers, NaN/inf, huge numbers, strings, empty cells, no rows)
and paths either train or fail with one clear ConfigError before anything is recorded: describe_source,
the preset it makes, and building its data and model raise nothing else (an exception there would
record a failed run)."""

from __future__ import annotations

import csv
import json
import math

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from workbench.errors import ConfigError
from workbench.presets import load_preset

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])

names = st.one_of(st.sampled_from(["label", "target", "x", "y", "feature", ""]), st.text(max_size=8))
cells = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "nan", "inf", "-inf", "NaN", "1e999", "a", "b", "cat", "0", "1", "true"]),
    st.text(max_size=12), st.none(),
)


@st.composite
def tables(draw):
    columns = draw(st.lists(names, min_size=1, max_size=5))
    rows = draw(st.lists(st.lists(cells, min_size=len(columns), max_size=len(columns)), max_size=40))
    label = draw(st.one_of(st.none(), st.sampled_from(columns), st.text(max_size=8)))
    return columns, rows, label, draw(st.sampled_from(["csv", "tsv", "jsonl", "json"]))


@st.composite
def near_tables(draw):
    """A trainable table (numeric features, a label of a few classes) with odd values sprinkled in."""
    features = draw(st.integers(min_value=1, max_value=3))
    columns = [f"x{i}" for i in range(features)] + ["label"]
    numbers = st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.floats(min_value=-1e6, max_value=1e6),
                        st.sampled_from([float("nan"), float("inf"), 1e300, -1e300, 0.0]), st.none(),
                        st.sampled_from(["", "abc"]))
    classes = st.one_of(st.sampled_from(["a", "b", "c"]), st.sampled_from([0, 1]), st.none())
    rows = draw(st.lists(st.tuples(*[numbers] * features, classes).map(list), min_size=4, max_size=40))
    return columns, rows, draw(st.sampled_from([None, "label", "x0"])), draw(st.sampled_from(["csv", "jsonl", "json"]))


def write(path, columns, rows, fmt) -> None:
    if fmt in ("csv", "tsv"):
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, delimiter="," if fmt == "csv" else "\t")
            writer.writerow(columns)
            writer.writerows(["" if c is None else c for c in row] for row in rows)
        return
    records = [dict(zip(columns, row)) for row in rows]
    text = json.dumps(records, allow_nan=True) if fmt == "json" else \
        "".join(json.dumps(r, allow_nan=True) + "\n" for r in records)
    path.write_text(text, encoding="utf-8")


def clear(error: ConfigError) -> None:
    assert error.problems
    for problem in error.problems:
        assert problem and "\n" not in problem and "Traceback" not in problem, problem


def train_set_up(data: str, label: str | None):
    """What `workbench train mlp-quadrants --data DATA [--label L]` does before it records a run."""
    import torch

    from workbench.builders import build_data, build_model, check_preset
    from workbench.data.source import describe_source

    base = load_preset("mlp-quadrants")
    choice = describe_source(data, label, base)
    preset = load_preset("mlp-quadrants", choice.as_overrides(base))
    check_preset(preset)
    built = build_data(preset)
    model = build_model(preset, built.info)
    assert isinstance(model, torch.nn.Module)
    return choice


@pytest.mark.slow
@FUZZ
@given(table=st.one_of(tables(), near_tables()))
def test_fuzzed_tables_train_or_fail_clearly(tmp_path_factory, table):
    columns, rows, label, fmt = table
    path = tmp_path_factory.mktemp("data") / f"table.{fmt}"
    write(path, columns, rows, fmt)
    try:
        choice = train_set_up(str(path), label)
    except ConfigError as error:
        clear(error)
        event("refused")
        return
    event("set up")  # --hypothesis-show-statistics: both outcomes occur
    assert choice.rows >= 1 and all(math.isfinite(v) for v in choice.target.values())


@FUZZ
# Not "/" or "~": a folder is scanned for data files, and the whole disk takes as long as it takes.
@given(data=st.one_of(st.text(max_size=30), st.sampled_from(["", " ", ".", "..", "nope.csv", "a/b",
                                                            "no/such/dataset", "x.parquet", "-", "\x00"])),
       label=st.one_of(st.none(), st.text(max_size=8)))
@example(data="~0", label=None)  # a `~name` naming no user: pathlib raises RuntimeError (found in CI)
@example(data="~no-such-user/t.csv", label="y")
def test_fuzzed_data_paths_fail_clearly(isolated, data, label):
    try:
        train_set_up(data, label)
    except ConfigError as error:
        clear(error)
