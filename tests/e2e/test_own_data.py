"""`workbench train PRESET --data PATH [--label COLUMN]` on files the tests write: a classifier, a binary
model and a regression model from tables, CNN/ResNet presets on images, a text classifier; the JSON
contract, the stored config, and bad data (one line, exit 2, nothing recorded)."""

from __future__ import annotations

import json

import pytest

from support.datafiles import (table_rows, write_csv, write_image_folder, write_image_parquet, write_jsonl,
                               write_parquet, write_texts_csv)
from workbench.cli import main

QUICK = ["--set", "train.threads=1", "--set", "train.probe_every=0", "--set", "train.log_every=20"]


def train(capsys, *args: str) -> tuple[dict, str]:
    code = main(["train", *args, "--json", *QUICK])
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    return json.loads(out), err


def stored_config(runs_dir, run_id: str) -> dict:
    from workbench.store import RunStore

    store = RunStore(runs_dir)
    try:
        return store.get_run(run_id)["config"]
    finally:
        store.close()


@pytest.mark.slow
def test_a_csv_trains_a_classifier_and_its_config_keeps_the_data(capsys, runs_dir, tmp_path):
    path = write_csv(tmp_path / "iris.csv", table_rows(600, kind="classes"))
    summary, err = train(capsys, "mlp-quadrants", "--data", str(path), "--set", "train.max_steps=300",
                         "--set", "train.eval_every=150")
    assert summary["status"] == "completed" and summary["metrics"]["val_accuracy"] >= 0.9
    assert "label column 'species'" in err and "3 classes" in err
    config = stored_config(runs_dir, summary["run_id"])
    assert config["data"] == {"kind": "table", "target": None,
                              "args": {"path": str(path.resolve()), "label": "species"}}
    assert config["task"] == "classification"
    assert not [f for f in summary["findings"] if f["severity"] != "info"], summary["findings"]


@pytest.mark.slow
def test_a_parquet_file_trains_a_binary_model_under_a_bce_preset(capsys, runs_dir, tmp_path):
    path = write_parquet(tmp_path / "churn.parquet", table_rows(600, kind="binary"))
    summary, err = train(capsys, "mlp-tabular-binary", "--data", str(path), "--set", "train.max_steps=300",
                         "--set", "train.eval_every=150")
    assert summary["metrics"]["val_accuracy"] >= 0.9
    config = stored_config(runs_dir, summary["run_id"])
    assert config["task"] == "binary" and config["train"]["loss"] == "bce_with_logits"
    assert "label column 'target' (found by name" in err


@pytest.mark.slow
def test_a_number_to_predict_trains_a_regression_model(capsys, runs_dir, tmp_path):
    path = write_jsonl(tmp_path / "houses.jsonl", table_rows(600, kind="regression"))
    summary, err = train(capsys, "mlp-quadrants", "--data", str(path), "--label", "price",
                         "--set", "train.max_steps=400", "--set", "train.eval_every=200")
    config = stored_config(runs_dir, summary["run_id"])
    assert config["task"] == "regression" and config["train"]["loss"] == "mse"
    metrics = summary["metrics"]
    assert "val_accuracy" not in metrics or metrics["val_accuracy"] is None
    assert metrics["val_mae"] is not None and metrics["val_mae"] < 400  # in the label's units (its std ~1800)
    assert metrics["val_r2"] >= 0.9


@pytest.mark.slow
def test_a_folder_of_images_trains_the_cnn(capsys, runs_dir, tmp_path):
    folder = write_image_folder(tmp_path / "pictures", per_class=40)
    summary, err = train(capsys, "cnn-shapes", "--data", str(folder), "--set", "data.args.image_size=16",
                         "--set", "model.args.width_multiplier=0.25", "--set", "train.max_steps=80",
                         "--set", "train.eval_every=40", "--set", "train.batch_size=32")
    assert summary["metrics"]["val_accuracy"] >= 0.9
    assert stored_config(runs_dir, summary["run_id"])["data"]["kind"] == "image_folder"


@pytest.mark.slow
def test_image_bytes_in_parquet_train_the_cnn_and_the_resnet(capsys, runs_dir, tmp_path):
    path = write_image_parquet(tmp_path / "pictures.parquet", per_class=40)
    summary, err = train(capsys, "cnn-shapes", "--data", str(path), "--set", "data.args.image_size=16",
                         "--set", "model.args.width_multiplier=0.25", "--set", "train.max_steps=80",
                         "--set", "train.eval_every=40", "--set", "train.batch_size=32")
    assert summary["metrics"]["val_accuracy"] >= 0.9
    assert stored_config(runs_dir, summary["run_id"])["data"]["kind"] == "images"
    summary, err = train(capsys, "resnet18-transfer", "--data", str(path), "--set", "data.args.image_size=32",
                         "--set", "train.max_steps=6", "--set", "train.eval_every=6", "--set", "train.eval_batches=1")
    assert summary["status"] == "completed"
    assert "3 classes" in err and "at 32x32" in err


@pytest.mark.slow
def test_a_csv_of_sentences_trains_a_text_classifier(capsys, runs_dir, tmp_path):
    path = write_texts_csv(tmp_path / "texts.csv", n=450)
    summary, err = train(capsys, "transformer-classifier", "--data", str(path), "--set", "data.args.seq_len=12",
                         "--set", "model.args.d_model=32", "--set", "train.batch_size=32",
                         "--set", "train.max_steps=150", "--set", "train.eval_every=75")
    assert summary["metrics"]["val_accuracy"] >= 0.9
    config = stored_config(runs_dir, summary["run_id"])
    assert config["data"]["kind"] == "hf" and config["data"]["args"]["text_field"] == "text"


@pytest.mark.parametrize("make,args,needle", [
    (lambda d: d / "gone.csv", [], "gone.csv: file not found"),
    (lambda d: "~no-such-user-4711/t.csv", [], "~no-such-user-4711/t.csv"),  # kept as typed, as a shell does
    (lambda d: put(d / "empty.csv", b""), [], "the file is empty"),
    (lambda d: write_csv(d / "t.csv", table_rows(40)), ["--label", "kind"],
     "label column 'kind' not found (columns: x1, x2, color, species)"),
    (lambda d: write_csv(d / "ids.csv", [{"a": i, "name": f"user-{i}", "label": i % 2} for i in range(80)]), [],
     "column 'name' cannot be read as features"),
    (lambda d: put(d / "nan.csv", b"a,b,label\n1,2,0\n,3,1\n" + b"".join(b"%d,%d,%d\n" % (i, i, i % 2) for i in range(40))),
     ["--set", 'data.args.missing="refuse"'], "column 'a' has 1 missing or non-finite value(s)"),
    (lambda d: write_csv(d / "one.csv", [{"a": i, "label": "cat"} for i in range(30)]), [], "a single class ('cat')"),
    (lambda d: write_csv(d / "iris.csv", table_rows(90)), ["--set", "data.args.num_classes=4"],
     "data.args.num_classes = 4, but label 'species' has 3 classes"),
])
def test_bad_data_exits_2_with_one_line_and_records_nothing(capsys, runs_dir, tmp_path, make, args, needle):
    path = make(tmp_path)
    code = main(["train", "mlp-quadrants", "--data", str(path), *args, "--json", *QUICK])
    out, err = capsys.readouterr()
    problems = [line for line in err.splitlines() if line.startswith("workbench: error")]
    assert code == 2 and out == ""
    assert len(problems) == 1 and needle in problems[0], err
    assert "Traceback" not in err
    if (runs_dir / "workbench.db").exists():
        from workbench.store import RunStore

        assert RunStore(runs_dir).list_runs() == []


def test_a_folder_too_big_to_look_through_exits_2_and_records_nothing(capsys, runs_dir, tmp_path, monkeypatch):
    import workbench.data.source as source

    monkeypatch.setattr(source, "MAX_SCAN", 30, raising=False)  # the real cap is 100,000: `--data /` stops, not walks the disk
    for i in range(40):
        (tmp_path / "home" / f"project{i}").mkdir(parents=True)
        write_csv(tmp_path / "home" / f"project{i}" / "t.csv", table_rows(2))
    code = main(["train", "mlp-quadrants", "--data", str(tmp_path / "home"), "--json", *QUICK])
    out, err = capsys.readouterr()
    problems = [line for line in err.splitlines() if line.startswith("workbench: error")]
    assert code == 2 and out == "" and len(problems) == 1, err
    assert "--data:" in problems[0] and "more than 30 files and folders" in problems[0]
    if (runs_dir / "workbench.db").exists():
        from workbench.store import RunStore

        assert RunStore(runs_dir).list_runs() == []


def put(path, content: bytes):
    path.write_bytes(content)
    return path


def test_label_without_data_and_data_with_resume_are_usage_errors(capsys):
    assert main(["train", "mlp-quadrants", "--label", "y"]) == 2
    assert "--label names a column of --data" in capsys.readouterr().err
    assert main(["train", "--resume", "some-run", "--data", "x.csv"]) == 2
    assert "--resume takes no --data" in capsys.readouterr().err


@pytest.mark.slow
def test_standardisation_statistics_are_stored_with_the_run_and_survive_a_resume(store, tmp_path):
    """The statistics come from the training rows only, are written with the run, and a resumed run uses
    them even when the file has changed since (here every x1 moved by +1000)."""
    import numpy as np

    from workbench.data.source import describe_source
    from workbench.data.tables import load_tables
    from workbench.presets import load_preset
    from workbench.training.trainer import Trainer
    from workbench.training.telemetry import Callback

    rows = table_rows(600, kind="classes")
    path = write_csv(tmp_path / "iris.csv", rows)
    base = load_preset("mlp-quadrants")
    quick = ["train.max_steps=40", "train.eval_every=20", "train.checkpoint_every=20", "train.threads=1",
             "train.probe_every=0", "train.log_every=10"]
    preset = load_preset("mlp-quadrants", describe_source(str(path), None, base).as_overrides(base) + quick)

    class StopAt(Callback):
        def on_batch(self, run, batch):
            if run.step >= 20:
                run.stop()

    partial = Trainer(preset, store, callbacks=[StopAt()]).run()
    assert partial.status == "stopped"
    state_file = store.run_dir(partial.run_id) / "data_state.json"
    fitted = json.loads(state_file.read_text())
    _, train_rows, val_rows, _, _ = load_tables(str(path), "species", None, "train", None, 0.2, 0, None, None, 50, 50)
    train_x1 = np.array(train_rows["x1"].to_pylist())
    all_x1 = np.array([r["x1"] for r in rows])
    assert fitted["numeric"]["x1"]["mean"] == pytest.approx(train_x1.mean())
    assert fitted["numeric"]["x1"]["mean"] != pytest.approx(all_x1.mean(), abs=1e-9)
    assert fitted["numeric"]["x1"]["std"] == pytest.approx(train_x1.std())

    write_csv(path, [{**r, "x1": r["x1"] + 1000} for r in rows])

    class Logs(Callback):
        lines: list[str] = []

        def on_event(self, run, event):
            self.lines.append(event.text)

    resumed_trainer = Trainer(preset, store, callbacks=[Logs()], resume_run_id=partial.run_id)
    resumed = resumed_trainer.run()
    assert resumed.status == "completed" and resumed.steps == 40
    assert resumed_trainer.info.extra["fitted"] == fitted  # the stored statistics, not the changed file's
    assert json.loads(state_file.read_text()) == fitted
    shifted = float(resumed_trainer.val_data.tensors[0][:, 0].mean())
    assert shifted == pytest.approx(1000 / fitted["numeric"]["x1"]["std"], rel=0.05)
    assert any("statistics restored from the run" in line for line in Logs.lines)  # the set-up log says so


@pytest.mark.slow
def test_a_head_that_does_not_fit_the_classes_is_an_error_before_training(capsys, runs_dir, tmp_path):
    path = write_csv(tmp_path / "iris.csv", table_rows(90))
    code = main(["train", "mlp-quadrants", "--data", str(path), "--set", "model.args.num_classes=4", *QUICK])
    err = capsys.readouterr().err
    assert code == 2
    assert "model: gives 4 outputs per sample, but the data needs 3 classes (setosa, versicolor, virginica)" in err
    from workbench.store import RunStore

    assert RunStore(runs_dir).list_runs() == []
