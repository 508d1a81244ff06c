"""Pre-flight checks: each one fails (or warns) on a model built to fail it, and passes on a healthy preset."""

from __future__ import annotations

import json

from support.diagnostics import custom_data, custom_model, fast_preset
from workbench.diagnostics.preflight import preflight_failed, run_preflight


def by_name(results):
    grouped = {}
    for result in results:
        grouped.setdefault(result.name, []).append(result)
    return grouped


def test_a_healthy_preset_passes_every_check():
    results = by_name(run_preflight(fast_preset()))
    assert [r.status for r in results["output_shape"]] == ["pass"]
    assert [r.status for r in results["initial_loss"]] == ["pass"]
    assert [r.status for r in results["gradient_flow"]] == ["pass"]
    assert [r.status for r in results["overfit_one_batch"]] == ["pass"]
    assert [r.status for r in results["gradcheck"]] == ["skip"]  # only built-in modules


def test_wrong_number_of_outputs_fails_the_shape_check():
    results = run_preflight(fast_preset(**custom_model("mlp", outputs=3)))
    shape = by_name(results)["output_shape"][0]
    assert shape.status == "fail" and "3" in shape.message and "4 classes" in shape.message
    assert preflight_failed(results)


def test_regression_output_of_the_wrong_size_fails_the_shape_check():
    preset = fast_preset(**custom_model("mlp", outputs=2), **custom_data("shifted_regression", offset=0.0),
                         **{"task": "regression", "train.loss": "mse"})
    shape = by_name(run_preflight(preset))["output_shape"][0]
    assert shape.status == "fail" and "elements" in shape.message


def test_a_layer_outside_the_forward_pass_gets_no_gradient():
    flow = by_name(run_preflight(fast_preset(**custom_model("unused_layer"))))["gradient_flow"][0]
    assert flow.status == "warn" and flow.layer == "spare"
    assert flow.evidence["no_grad"] == ["spare.weight", "spare.bias"]


def test_a_hand_written_backward_that_is_wrong_fails_gradcheck():
    results = run_preflight(fast_preset(**custom_model("wrong_backward")))
    failed = {r.layer for r in by_name(results)["gradcheck"] if r.status == "fail"}
    assert "bad" in failed
    assert preflight_failed(results)


def test_correct_hand_written_modules_pass_gradcheck():
    checks = by_name(run_preflight(fast_preset(**custom_model("flipping_input"))))["gradcheck"]
    # Flipper and the zoo MLP are hand-written (the Sequential around them is torch's).
    assert {r.layer: r.status for r in checks} == {"0": "pass", "1": "pass"}


def test_a_learning_rate_that_cannot_fit_one_batch_warns():
    check = by_name(run_preflight(fast_preset(**{"optim.lr": 1e-7})))["overfit_one_batch"][0]
    assert check.status == "warn" and check.evidence["best_loss"] > 0.5 * check.evidence["initial_loss"]


def test_an_oversized_output_layer_warns_about_the_initial_loss():
    check = by_name(run_preflight(fast_preset(**custom_model("mlp", head_scale=60.0))))["initial_loss"][0]
    assert check.status == "warn" and check.evidence["initial_loss"] > check.evidence["threshold"]


def test_cli_preflight_failure_exits_2_and_records_nothing(capsys, tmp_path, runs_dir):
    from workbench.cli import main
    from workbench.presets import preset_to_toml

    path = tmp_path / "three.toml"
    path.write_text(preset_to_toml(fast_preset(**custom_model("mlp", outputs=3))))
    code = main(["train", str(path), "--preflight", "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 2 and report["status"] == "invalid"
    assert {c["name"]: c["status"] for c in report["preflight"]}["output_shape"] == "fail"
    assert "preflight fail output_shape" in captured.err
    assert not (runs_dir / "workbench.db").exists()


def test_cli_preflight_pass_trains_and_keeps_the_checks_in_the_summary(capsys, tmp_path):
    from workbench.cli import main
    from workbench.presets import preset_to_toml

    path = tmp_path / "ok.toml"
    path.write_text(preset_to_toml(fast_preset(**{"train.max_steps": 40})))
    code = main(["train", str(path), "--preflight", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["status"] == "completed"
    assert {c["name"] for c in summary["preflight"]} >= {"output_shape", "initial_loss", "gradient_flow"}
