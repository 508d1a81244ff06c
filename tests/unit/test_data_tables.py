"""`--data` on tables, images and texts: what a file holds, how its columns are read, the split, and the
statistics learned from the training rows alone. Files are written here; nothing is downloaded."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from support import quick_preset
from support.datafiles import (table_rows, write_csv, write_image_folder, write_image_parquet, write_json,
                               write_jsonl, write_parquet, write_texts_csv)
from workbench.data.source import CARRIED, describe_source
from workbench.data.tables import held_out, load_tables, read_table, table
from workbench.errors import ConfigError


@pytest.mark.parametrize("writer,suffix", [(write_csv, ".csv"), (lambda p, r: write_csv(p, r, "\t"), ".tsv"),
                                           (write_parquet, ".parquet"), (write_json, ".json"),
                                           (write_jsonl, ".jsonl")])
def test_every_table_format_reads_to_the_same_columns(tmp_path, writer, suffix):
    rows = table_rows(50)
    path = writer(tmp_path / f"t{suffix}", rows)
    read, _ = read_table(str(path))
    assert read.column_names == ["x1", "x2", "color", "species"] and read.num_rows == 50
    choice = describe_source(str(path), None, quick_preset())
    assert choice.kind == "table" and choice.task == "classification" and choice.label == "species"
    assert choice.columns == {"x1": "numeric", "x2": "numeric", "color": "categorical", "species": "label"}
    assert sum(choice.classes.values()) == 50


def test_label_default_is_label_then_target_then_the_last_column_and_the_log_says_so(tmp_path):
    rows = [{"a": i, "b": i % 3, "c": i % 2} for i in range(40)]
    choice = describe_source(str(write_csv(tmp_path / "last.csv", rows)))
    assert choice.label == "c" and "the last column" in choice.label_said
    rows = [{"target": i % 2, "a": i, "c": i % 3} for i in range(40)]
    choice = describe_source(str(write_csv(tmp_path / "target.csv", rows)))
    assert choice.label == "target" and "found by name" in choice.label_said
    rows = [{"target": i % 2, "label": i % 3, "a": i} for i in range(40)]
    assert describe_source(str(write_csv(tmp_path / "label.csv", rows))).label == "label"
    assert describe_source(str(tmp_path / "label.csv"), "target").label == "target"


def test_the_label_decides_the_task_and_the_loss(tmp_path):
    classes = str(write_csv(tmp_path / "c.csv", table_rows(60, kind="classes")))
    binary = str(write_csv(tmp_path / "b.csv", table_rows(60, kind="binary")))
    numbers = str(write_csv(tmp_path / "r.csv", table_rows(60, kind="regression")))
    mlp, bce = quick_preset("mlp-quadrants"), quick_preset("mlp-tabular-binary")
    assert (describe_source(classes, None, mlp).task, describe_source(classes, None, mlp).loss) == \
        ("classification", "cross_entropy")
    # three classes under a BCE preset: softmax classification, and the overrides say so
    three = describe_source(classes, None, bce)
    assert (three.task, three.loss) == ("classification", "cross_entropy")
    assert 'task="classification"' in three.as_overrides(bce) and 'train.loss="cross_entropy"' in three.as_overrides(bce)
    assert describe_source(binary, None, bce).task == "binary"
    assert describe_source(binary, None, mlp).task == "classification"  # two classes, softmax preset
    reg = describe_source(numbers, None, mlp)
    assert (reg.task, reg.loss) == ("regression", "mse") and reg.target["min"] < 5000 < reg.target["max"]
    assert reg.as_overrides(mlp)[2:] == ['task="regression"', 'train.loss="mse"']


def test_split_is_content_stable_and_seeded(tmp_path):
    import pyarrow as pa

    rows = table_rows(400)
    forward = pa.Table.from_pylist(rows)
    shuffled_rows = rows[:]
    random.Random(1).shuffle(shuffled_rows)
    shuffled = pa.Table.from_pylist(shuffled_rows)

    def val_keys(tbl, seed=0):
        mask = held_out(tbl, 0.2, seed)
        return {json.dumps(r, sort_keys=True) for r, m in zip(tbl.to_pylist(), mask) if m}

    assert val_keys(forward) == val_keys(shuffled)  # the same rows whatever the order of the file
    assert 50 < len(val_keys(forward)) < 110
    assert val_keys(forward, 1) != val_keys(forward, 0)
    doubled = pa.Table.from_pylist(rows + rows)  # duplicates land on the same side
    mask = held_out(doubled, 0.2, 0)
    assert (mask[:400] == mask[400:]).all()


def test_standardisation_statistics_come_from_the_training_rows_only(tmp_path):
    rows = table_rows(300, kind="classes")
    train_file = write_csv(tmp_path / "train.csv", rows)
    shifted = [{**r, "x1": r["x1"] + 10_000} for r in table_rows(100, seed=5)]
    val_file = write_csv(tmp_path / "val.csv", shifted)
    bundle = table(0, path=str(train_file), val_path=str(val_file))
    fitted = bundle.info.extra["fitted"]
    x1 = np.array([r["x1"] for r in rows])
    assert fitted["numeric"]["x1"]["mean"] == pytest.approx(x1.mean())
    assert fitted["numeric"]["x1"]["std"] == pytest.approx(x1.std())
    train_x = bundle.train.tensors[0]
    assert abs(float(train_x[:, 0].mean())) < 1e-4 and abs(float(train_x[:, 0].std()) - 1) < 0.01
    assert float(bundle.val.tensors[0][:, 0].mean()) > 50  # the val rows are scaled by train's statistics
    # the hash split: statistics equal those of exactly the rows that train
    bundle = table(0, path=str(train_file))
    plan, train, val, _, _ = load_tables(str(train_file), None, None, "train", None, 0.2, 0, None, None, 50, 50)
    train_x1 = np.array(train["x1"].to_pylist())
    assert bundle.info.extra["fitted"]["numeric"]["x1"]["mean"] == pytest.approx(train_x1.mean())
    assert len(bundle.val) == val.num_rows and len(bundle.train) + len(bundle.val) == 300
    # given back (a resumed run), the stored statistics are used, not the file's
    stored = json.loads(json.dumps(bundle.info.extra["fitted"]))
    stored["numeric"]["x1"]["mean"] += 100.0
    again = table(0, path=str(train_file), fitted=stored)
    assert float(again.train.tensors[0][:, 0].mean()) == pytest.approx(-100.0 / stored["numeric"]["x1"]["std"], abs=1e-3)


def test_missing_values_are_imputed_with_the_train_median_and_flagged_or_refused(tmp_path):
    rows = table_rows(200)
    for row in rows[::10]:
        row["x1"] = ""
    for row in rows[3::25]:
        row["x2"] = "inf"
    path = write_csv(tmp_path / "holes.csv", rows)
    bundle = table(0, path=str(path))
    features = bundle.info.extra["features"]
    assert features[:3] == ["x1", "x1_missing", "x2"] and "x2_missing" in features
    flags = bundle.train.tensors[0][:, 1]
    assert set(flags.tolist()) == {0.0, 1.0}
    import torch

    assert torch.isfinite(bundle.train.tensors[0]).all() and torch.isfinite(bundle.val.tensors[0]).all()
    with pytest.raises(ConfigError, match=r"column 'x1' has \d+ missing or non-finite value\(s\) in the training rows"):
        table(0, path=str(path), missing="refuse")


def test_categories_and_rows_without_a_label(tmp_path):
    rows = table_rows(120)
    rows[5]["species"] = ""
    rows[6]["color"] = ""
    path = write_csv(tmp_path / "t.csv", rows)
    bundle = table(0, path=str(path))
    assert "color=(missing)" in bundle.info.extra["features"]
    assert len(bundle.train) + len(bundle.val) == 119
    assert bundle.info.extra["classes"] == ["setosa", "versicolor", "virginica"]
    ints = [{"a": float(i), "code": i % 4, "y": i % 2} for i in range(80)]
    bundle = table(0, path=str(write_csv(tmp_path / "ints.csv", ints)), categorical=["code"])
    assert bundle.info.extra["features"] == ["a", "code=0", "code=1", "code=2", "code=3"]


def put(path, content: bytes):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("make,needle", [
    (lambda d: d / "nope.csv", "file not found"),
    (lambda d: put(d / "empty.csv", b""), "the file is empty"),
    (lambda d: put(d / "header.csv", b"a,b\n"), "has no rows"),
    (lambda d: write_csv(d / "one.csv", [{"a": i, "label": "x"} for i in range(20)]), "single class ('x')"),
    (lambda d: write_csv(d / "ids.csv", [{"a": i, "name": f"id{i}x", "label": i % 2} for i in range(80)]),
     "column 'name' cannot be read as features"),
    (lambda d: put(d / "bad.parquet", b"not parquet at all"), "cannot be read as PARQUET"),
    (lambda d: d / "photo.png", "file not found"),
])
def test_bad_data_is_one_line_naming_what_is_wrong(tmp_path, make, needle):
    path = make(tmp_path)
    with pytest.raises(ConfigError) as caught:
        describe_source(str(path), None, quick_preset())
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_label_column_names_it_and_the_columns_found(tmp_path):
    path = write_csv(tmp_path / "t.csv", table_rows(30))
    with pytest.raises(ConfigError, match=r"label column 'kind' not found \(columns: x1, x2, color, species\)"):
        describe_source(str(path), "kind")


def test_images_texts_and_folders_pick_their_kind(tmp_path):
    folder = write_image_folder(tmp_path / "shapes", per_class=5)
    cnn = quick_preset("cnn-shapes")
    choice = describe_source(str(folder), None, cnn)
    assert choice.kind == "image_folder" and choice.classes == {"centre": 5, "left": 5, "top": 5}
    assert choice.image_size == (16, 16)
    assert choice.args == {"root": str(folder.resolve()), "augment": True, "image_size": 16}
    parquet = write_image_parquet(tmp_path / "img.parquet", per_class=4)
    choice = describe_source(str(parquet), None, quick_preset("resnet18-transfer"))
    assert choice.kind == "images" and choice.args["image_size"] == 48 and choice.columns["image"] == "image"
    assert choice.classes == {"centre": 4, "left": 4, "top": 4}
    texts = write_texts_csv(tmp_path / "texts.csv", n=60)
    choice = describe_source(str(texts), None, quick_preset("transformer-classifier"))
    assert choice.kind == "hf" and choice.args["text_field"] == "text" and choice.args["label_field"] == "topic"
    assert choice.args["seq_len"] == 48 and choice.task == "classification"
    (tmp_path / "book.txt").write_text("some text to model. " * 50)
    choice = describe_source(str(tmp_path / "book.txt"), None, quick_preset("gpt-char"))
    assert choice.kind == "text_file" and choice.task == "language_modeling" and choice.args["block_size"] == 64


def test_grayscale_images_train_with_one_channel(tmp_path):
    from PIL import Image

    for name in ("dark", "light"):
        (tmp_path / "g" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (100, 80), 30 if name == "dark" else 220).save(tmp_path / "g" / name / f"{i}.png")
    choice = describe_source(str(tmp_path / "g"), None, quick_preset("cnn-shapes"))
    assert choice.args["channels"] == 1 and choice.args["image_size"] == 64  # larger images: 64 a side


def test_a_data_preset_saved_from_the_form_or_cli_round_trips(tmp_path):
    from workbench.presets import load_preset, save_preset

    path = write_csv(tmp_path / "iris.csv", table_rows(60))
    base = quick_preset()
    preset = load_preset("mlp-quadrants", describe_source(str(path), None, base).as_overrides(base))
    saved = save_preset(preset.model_copy(update={"name": "iris-mlp"}), tmp_path / "presets")
    again = load_preset(str(saved))
    assert again.data == preset.data and again.data.args == {"path": str(path.resolve()), "label": "species"}


def test_carried_arguments_are_ones_each_builder_accepts():
    import inspect

    from workbench.registry import DATASETS, resolve

    for kind, names in CARRIED.items():
        accepted = set(inspect.signature(resolve(DATASETS, kind)).parameters)
        assert set(names) <= accepted, kind


def test_a_dataset_folder_loads_through_datasets_with_its_own_test_split(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    write_csv(folder / "train.csv", table_rows(200))
    write_csv(folder / "test.csv", table_rows(60, seed=9))
    choice = describe_source(str(folder), None, quick_preset())
    assert choice.kind == "table" and choice.args["val_split"] == "test" and choice.rows == 200
    bundle = table(0, **choice.args)
    assert len(bundle.train) == 200 and len(bundle.val) == 60


def test_tui_takes_data_and_label_as_overrides(tmp_path):
    from workbench.cli import apply_data_flags, build_parser

    path = write_csv(tmp_path / "r.csv", table_rows(60, kind="regression"))
    args = build_parser().parse_args(["tui", "--preset", "mlp-quadrants", "--data", str(path), "--label", "price",
                                      "--set", "optim.lr=0.01"])
    apply_data_flags(args, args.preset)
    assert args.overrides == ['data.kind="table"', f'data.args={{"path" = "{path.resolve()}", "label" = "price"}}',
                              'task="regression"', 'train.loss="mse"', "optim.lr=0.01"]


def test_images_kind_reads_an_imagefolder_and_a_dataset_folder_through_datasets(tmp_path):
    from workbench.data.hub_images import images

    folder = write_image_folder(tmp_path / "pics", per_class=6)
    bundle = images(0, path=str(folder), image_size=16)  # datasets' imagefolder: Image + ClassLabel columns
    assert bundle.info.extra["classes"] == ["centre", "left", "top"] and bundle.info.input_shape == (3, 16, 16)
    assert len(bundle.train) + len(bundle.val) == 18
    x, y = bundle.train[0]
    assert x.shape == (3, 16, 16) and x.dtype.is_floating_point
    ds = tmp_path / "ds"
    ds.mkdir()
    write_image_parquet(ds / "train.parquet", per_class=5)
    write_image_parquet(ds / "test.parquet", per_class=2, seed=3)
    choice = describe_source(str(ds), None, quick_preset("cnn-shapes"))
    assert choice.kind == "images" and choice.args["val_split"] == "test"
    bundle = images(0, **choice.args)
    assert (len(bundle.train), len(bundle.val)) == (15, 6)


def test_a_folder_too_big_to_look_through_is_one_line_naming_data(tmp_path, monkeypatch):
    # `--data /` or `~` walked the whole disk; the scan stops at MAX_SCAN files and folders, nested ones too.
    import workbench.data.source as source

    monkeypatch.setattr(source, "MAX_SCAN", 60, raising=False)
    for i in range(8):
        for j in range(8):
            sub = tmp_path / "big" / f"d{i}" / f"e{j}"
            sub.mkdir(parents=True)
            (sub / "notes.txt").write_text("some text\n")
    with pytest.raises(ConfigError, match=r"^--data: .*big holds more than 60 files and folders"):
        describe_source(str(tmp_path / "big"), None, quick_preset("gpt-char"))
    small = tmp_path / "big" / "d0"  # 16 entries: under the cap, read as before
    assert describe_source(str(small), None, quick_preset("gpt-char")).kind == "text_file"
