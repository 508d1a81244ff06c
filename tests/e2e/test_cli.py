"""The headless CLI contract (DESIGN.md): JSON summaries, listings and exit codes."""

from __future__ import annotations

import json

import pytest

from support import run_cli
from workbench.cli import main


def json_out(capsys):
    out = capsys.readouterr().out
    return json.loads(out)


@pytest.mark.slow
def test_train_json_summary_runs_and_show(capsys, runs_dir):
    code = main(["train", "mlp-quadrants", "--json", "--set", "train.max_steps=600", "--set", "train.eval_every=300"])
    assert code == 0
    summary = json_out(capsys)
    assert summary["status"] == "completed" and summary["steps"] == 600 and summary["world_size"] == 1
    assert summary["metrics"]["val_accuracy"] >= 0.9
    assert set(summary["metrics"]) >= {"train_loss", "val_loss", "val_accuracy", "best_val_loss"}
    assert summary["throughput"]["steps_per_second"] > 0 and summary["throughput"]["samples_per_second"] > 0
    assert summary["findings"] == [] or all(f["severity"] == "info" for f in summary["findings"])
    assert summary["store"] == str(runs_dir / "workbench.db")
    assert main(["runs", "--json"]) == 0
    runs = json_out(capsys)
    assert runs[0]["run_id"] == summary["run_id"]
    assert set(runs[0]) == {"run_id", "preset", "status", "steps", "started_at", "ended_at", "world_size"}
    assert main(["show", summary["run_id"], "--json"]) == 0
    shown = json_out(capsys)
    assert shown == summary


@pytest.mark.slow
def test_default_preset_reaches_the_accuracy_bar(capsys):
    """The issue's done-when: `workbench train mlp-quadrants --json` reaches val accuracy >= 0.9."""
    assert main(["train", "mlp-quadrants", "--json"]) == 0
    assert json_out(capsys)["metrics"]["val_accuracy"] >= 0.9


@pytest.mark.parametrize("args,needle", [
    (["train", "nope"], "preset 'nope' not found"),
    (["train", "mlp-quadrants", "--set", "optim.lr=-1"], "optim.lr"),
    (["train", "mlp-quadrants", "--set", "train.bogus=1"], "train.bogus: unknown key"),
    (["train", "mlp-quadrants", "--set", "model.args.width=3"], "model.args.width: unknown argument"),
    (["train", "mlp-quadrants", "--set", "model.kind=nope"], "model.kind: unknown model kind"),
    (["train", "missing.toml"], "preset file not found"),
    (["show", "no-such-run"], "not found"),
    (["train"], "name a preset"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line_and_records_nothing(capsys, runs_dir, args, needle):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    if (runs_dir / "workbench.db").exists():
        from workbench.store import RunStore

        assert RunStore(runs_dir).list_runs() == []


@pytest.mark.slow
def test_diverged_exits_3_and_failed_exits_1(capsys, tmp_path):
    bad_data = tmp_path / "data.py"
    bad_data.write_text(
        "import torch\nfrom torch.utils.data import TensorDataset\n"
        "def build():\n"
        "    x = torch.full((256, 2), float('inf')); y = torch.zeros(256, dtype=torch.long)\n"
        "    return TensorDataset(x, y), TensorDataset(x, y)\n"
    )
    assert main(["train", "mlp-quadrants", "--json", "--set", "data.kind=custom", "--set", "data.args={}",
                 "--set", f"data.target='{bad_data}:build'"]) == 3
    summary = json_out(capsys)
    assert summary["status"] == "diverged"
    assert any(f["code"].startswith("nonfinite") and f["severity"] == "critical" for f in summary["findings"])
    bad_model = tmp_path / "model.py"
    bad_model.write_text("def build():\n    raise RuntimeError('cannot build')\n")
    assert main(["train", "mlp-quadrants", "--json", "--set", "model.kind=custom", "--set", "model.args={}",
                 "--set", f"model.target='{bad_model}:build'"]) == 1
    summary = json_out(capsys)
    assert summary["status"] == "failed" and "cannot build" in summary["reason"]


@pytest.mark.slow
def test_presets_json_lists_every_preset(capsys):
    assert main(["presets", "--json"]) == 0
    presets = {p["name"]: p for p in json_out(capsys)}
    entry = presets["mlp-quadrants"]
    assert entry["task"] == "classification" and entry["model_kind"] == "mlp" and entry["params"] == 17412
    assert entry["description"]


@pytest.mark.slow
def test_console_script_and_module_entry_points():
    result = run_cli("--help")
    assert result.returncode == 0 and "train" in result.stdout
    result = run_cli("train", "mlp-quadrants", "--set", "train.max_steps=5", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"] == 5  # exactly one JSON object on stdout
    assert "training mlp-quadrants" in result.stderr  # progress goes to stderr
