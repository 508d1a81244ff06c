"""Comparing runs from the CLI: compare tables/JSON, sweeps and exports."""

from __future__ import annotations

import csv
import io
import json

import pytest

from workbench.cli import main
from workbench.store import RunStore

SMALL = ["--set", "train.max_steps=150", "--set", "train.eval_every=50", "--set", "data.args.train_size=2048",
         "--set", "train.log_every=10"]


def test_sweep_of_three_learning_rates_compares_and_picks_the_lowest_val_loss(capsys, runs_dir):
    code = main(["train", "mlp-quadrants", *SMALL, "--sweep", "optim.lr=1e-5,3e-3,3e-2", "--json"])
    assert code == 0
    comparison = json.loads(capsys.readouterr().out)
    runs = comparison["runs"]
    assert len(runs) == 3 and len(RunStore(runs_dir).list_runs()) == 3
    lowest = min(runs, key=lambda row: row["metrics"]["val_loss"]["best"])
    assert comparison["best_run"] == lowest["run_id"]
    assert set(comparison["differing_config"]) == {"optim.lr"}
    assert sorted(comparison["differing_config"]["optim.lr"].values()) == [1e-5, 3e-3, 3e-2]
    assert comparison["baseline"] == runs[0]["run_id"] and runs[0]["delta_vs_baseline"]["val_loss"] == 0


def test_compare_cli_table_json_target_and_errors(capsys, runs_dir):
    assert main(["train", "mlp-quadrants", *SMALL, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["train", "mlp-quadrants", *SMALL, "--set", "model.args.hidden=[16]", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["compare", first, second, "--json", "--target-val-loss", "1.0", "--baseline", second]) == 0
    comparison = json.loads(capsys.readouterr().out)
    assert comparison["baseline"] == second
    assert comparison["differing_config"]["model.args.hidden"] == {first: [128, 128], second: [16]}
    for row in comparison["runs"]:
        assert {"best", "final"} <= set(row["metrics"]["val_loss"])
        assert row["target"]["step"] is not None and row["target"]["seconds"] >= 0
        assert row["steps_per_second"] > 0
    assert main(["compare", first, second]) == 0
    table = capsys.readouterr().out
    assert first in table and "model.args.hidden" in table
    assert main(["compare", first]) == 2
    assert "at least two runs" in capsys.readouterr().err
    assert main(["compare", first, "nope"]) == 2


def test_runs_of_two_presets_differ_in_their_settings_not_in_their_names(capsys, runs_dir, tmp_path):
    """A preset file's copy with one setting changed: compare lists that setting, not the preset's name or
    description (the table's preset column shows the name), in the JSON, the text and the TUI's summary."""
    from workbench.tui.compare_data import summarize

    from workbench.presets import packaged_presets_dir

    text = (packaged_presets_dir() / "mlp-quadrants.toml").read_text()
    mine = tmp_path / "mine.toml"
    mine.write_text(text.replace('name = "mlp-quadrants"', 'name = "mine"').replace("lr = 3e-3", "lr = 0.01")
                    .replace("description = ", 'description = "my copy" #').replace("watch = ", 'watch = "" #'))
    assert main(["train", "mlp-quadrants", *SMALL, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["train", str(mine), *SMALL, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["compare", first, second, "--json"]) == 0
    differing = json.loads(capsys.readouterr().out)["differing_config"]
    assert "optim.lr" in differing and not {"name", "description", "watch"} & set(differing)
    assert main(["compare", first, second]) == 0
    text = capsys.readouterr().out
    assert "optim.lr:" in text and "  name:" not in text and "  description:" not in text
    assert summarize(RunStore(runs_dir), [first, second])["differing_config"].keys() == differing.keys()


def test_export_csv_jsonl_and_tensorboard(capsys, runs_dir, tmp_path):
    assert main(["train", "mlp-quadrants", *SMALL, "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["export", run_id, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    losses = [r for r in rows if r["name"] == "loss"]
    assert len(losses) == 150 and losses[0]["run_id"] == run_id
    out = tmp_path / "m.jsonl"
    assert main(["export", run_id, "--format", "jsonl", "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["step"] for line in lines] == sorted({line["step"] for line in lines})
    assert "loss" in lines[0] and any("val_loss" in line for line in lines)
    assert main(["export", run_id, "--format", "tensorboard", "--output", str(tmp_path / "tb")]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert len(events.Scalars("loss")) == 150
    # each scalar carries the wall time its step was reached (started_at + the run's time_s), not the export's
    store = RunStore(runs_dir)
    run = store.get_run(run_id)
    clock = dict(store.metric_series(run_id, "time_s"))
    for name in ("loss", "val_loss", "time_s"):
        for scalar in events.Scalars(name):
            assert run["started_at"] <= scalar.wall_time <= run["ended_at"]
            if scalar.step in clock:
                assert scalar.wall_time == pytest.approx(run["started_at"] + clock[scalar.step], abs=1e-3)
    walls = [scalar.wall_time for scalar in events.Scalars("loss")]
    assert walls == sorted(walls) and walls[-1] - walls[0] > 0
