"""Hostile input on the public API: `workbench.init(config=...)` and `Run.log(...)` with NaN, inf, huge
numbers, huge dicts, non-numeric values, odd names and any step order.

The guarantees (README, Reliability): init either records the run with a config that reads back as JSON,
or raises one clear error naming `config` and records nothing. `log` never raises on a number, whatever
its value or step order: finite values are stored, non-finite ones are stored as such (NaN reads back as
missing) and a non-finite loss ends the run `diverged` (`should_stop`); a value that is not a number
raises a TypeError/ValueError naming the metric at the call, and nothing of that call is recorded. The
run always finishes, and `workbench show --json` reads it."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench
from workbench.store import RunStore

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(2**80), max_value=2**80),
                    st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0, 10**400]))
leaves = st.one_of(numbers, st.text(max_size=10), st.booleans(), st.none(),
                   st.sampled_from([b"bytes", {1, 2}, object(), (1, 2), 1 + 2j]))
config_keys = st.one_of(st.text(max_size=10), st.integers(), st.none(), st.sampled_from([(1, 2), 1.5, b"k"]))
configs = st.recursive(st.dictionaries(config_keys, leaves, max_size=5),
                       lambda inner: st.dictionaries(config_keys, st.one_of(leaves, inner, st.lists(inner, max_size=3)),
                                                     max_size=4), max_leaves=20)


def show_json(runs_dir, run_id) -> dict:
    from workbench.cli import main

    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["show", run_id, "--json", "--runs-dir", str(runs_dir)]) == 0
    return json.loads(out.getvalue())  # strict JSON: no NaN


def clear_error(error: Exception, field: str) -> None:
    text = str(error)
    assert field in text and "\n" not in text and len(text) < 400, text


@FUZZ
@given(config=configs)
def test_fuzzed_init_configs_record_or_fail_clearly(runs_dir, config):
    before = len(RunStore(runs_dir).list_runs()) if (runs_dir / "workbench.db").exists() else 0
    try:
        run = workbench.init("fuzz-config", config=config, runs_dir=runs_dir)
    except (TypeError, ValueError) as error:
        clear_error(error, "config")
        assert len(RunStore(runs_dir).list_runs()) == before  # nothing recorded
        return
    run.log({"loss": 1.0}, step=0)
    run.finish()
    stored = RunStore(runs_dir).get_run(run.id)["config"]
    json.dumps(stored, allow_nan=False)  # reads back as strict JSON
    assert show_json(runs_dir, run.id)["status"] == "completed"


def test_a_deep_or_huge_config():
    """Nesting deeper than JSON can write is refused by name; a huge flat dict is recorded."""
    import tempfile
    from pathlib import Path

    runs_dir = Path(tempfile.mkdtemp())
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises((TypeError, ValueError)) as raised:
        workbench.init("deep", config=deep, runs_dir=runs_dir)
    clear_error(raised.value, "config")
    run = workbench.init("huge", config={f"k{i}": i for i in range(100_000)}, runs_dir=runs_dir)
    run.finish()
    assert len(RunStore(runs_dir).get_run(run.id)["config"]) == 100_000


metric_values = st.one_of(numbers, st.sampled_from(["1.0", "nan", None, [1.0], {"a": 1}, object(), True, 1 + 2j]))
metric_names = st.one_of(st.sampled_from(["loss", "val_loss", "val_accuracy", "lr", "my/metric", "", " "]),
                         st.text(max_size=12))
steps = st.one_of(st.none(), st.integers(min_value=-3, max_value=2**64), st.sampled_from([0, 1, 1, 2, 10**6]))


@FUZZ
@given(calls=st.lists(st.tuples(st.dictionaries(metric_names, metric_values, max_size=4), steps), max_size=12))
def test_fuzzed_log_calls_never_crash_on_numbers(runs_dir, calls):
    run = workbench.init("fuzz-log", runs_dir=runs_dir)
    accepted = 0
    for metrics, step in calls:
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())
        good_step = step is None or (0 <= step < 2**63)
        numeric = numeric and all(name.strip() for name in metrics)  # a metric needs a name
        try:
            run.log(metrics, step=step)
            accepted += 1
        except (TypeError, ValueError) as error:
            assert not (numeric and good_step), f"log raised on numbers {metrics} at step {step}: {error}"
            named = [repr(name) for name in metrics] + ["step"]
            assert any(n in str(error) for n in named), str(error)
        if run.should_stop:
            break
    status = run.finish()
    assert status in ("completed", "diverged", "stopped"), status
    summary = show_json(runs_dir, run.id)
    assert summary["status"] == status


def test_log_with_a_huge_dict_and_any_step_order(runs_dir):
    run = workbench.init("orders", runs_dir=runs_dir)
    run.log({f"m{i}": float(i) for i in range(5000)}, step=5)
    for step in (3, 3, 9, 0, 7):  # backwards, repeated: stored as given, charts sort by step
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    run.log({"loss": float("inf")}, step=11)
    assert run.finish() == "diverged"
    store = RunStore(runs_dir)
    assert len(store.metric_names(run.id)) >= 5001
    assert show_json(runs_dir, run.id)["status"] == "diverged"


def test_log_value_kinds(runs_dir):
    """Numbers of every kind are kept; what is not a number (or has no name) is refused by name, at once."""
    import numpy as np
    import torch

    run = workbench.init("kinds", runs_dir=runs_dir)
    run.log({"loss": torch.tensor(0.5), "ints": torch.tensor(3), "np": np.float32(0.25), "npint": np.int64(7),
             "big": 10**400, "small": -(10**400)}, step=0)
    for bad, field in (({"loss": "0.5"}, "'loss'"), ({"loss": None}, "'loss'"), ({"flag": True}, "'flag'"),
                       ({"z": torch.tensor(1 + 2j)}, "'z'"), ({"v": torch.ones(3)}, "'v'"), ({"s": np.str_("a")}, "'s'"),
                       ({1: 0.5}, "metric name 1"), ({"": 0.5}, "metric name ''")):
        with pytest.raises(ValueError) as raised:
            run.log({"kept": 1.0, **bad}, step=1)
        clear_error(raised.value, field)
    with pytest.raises(ValueError, match="step"):
        run.log({"loss": 1.0}, step=2**63)
    run.log({"loss": torch.tensor(float("nan"))}, step=2)
    assert run.should_stop or run.finish() == "diverged"
    run.finish()
    store = RunStore(runs_dir)
    assert "kept" not in store.metric_names(run.id)  # a refused call recorded nothing of itself
    assert store.last_metric(run.id, "big") == math.inf and store.last_metric(run.id, "small") == -math.inf
    assert store.last_metric(run.id, "npint") == 7.0 and store.get_run(run.id)["status"] == "diverged"
