"""Your own tables: a CSV, TSV, Parquet or JSON/JSONL file, or a `datasets` id, as standardised features.

The rules (README "Your own data" has the table):
- label: `label` if given, else a column named "label", else "target", else the last column.
- features: numbers and booleans are numeric, standardised with the TRAIN split's mean and std; strings
  with at most `max_categories` distinct values, and columns named in `categorical`, are one-hot encoded
  (one 0/1 column per value seen in training; an unseen value is all zeros); any other column can't be
  read as features and is an error naming it (drop it with `drop = [...]`).
- missing values (empty cells, null, NaN, inf): missing = "impute" fills a numeric cell with the train
  median and adds a `<column>_missing` 0/1 column; a categorical one is its own category "(missing)".
  missing = "refuse" stops instead, naming the column and how many rows.
- rows without a label are dropped (said in the log).
- label kind: strings, booleans and integers with at most `max_classes` distinct values are classes
  (sorted; names kept); floats, or integers with more distinct values, are a regression target
  (standardised with train statistics; the model predicts in those units, MAE is reported back in the
  label's own units).
- validation: `val_path` (a file with the same columns), `val_split` (a `datasets` split), else a
  `val_fraction` of the rows chosen by a hash of each row's content and `split_seed`: the same rows
  whatever their order in the file, and duplicate rows always land on the same side.

Everything learned from the train split (`fitted`: columns, categories, means, stds, medians, classes)
is a small JSON-able dict the trainer stores in the run folder; a resumed run passes it back, so it
sees the same features however the file changed. Reading and planning need only pyarrow and numpy
(the form's summary uses them on the UI thread's worker); torch is imported by the builder alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import ConfigError
from workbench.notices import notice
from workbench.paths import user_path

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".json": "json",
                  ".jsonl": "jsonl", ".ndjson": "jsonl"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
TEXT_SUFFIXES = {".txt", ".md", ".text"}
LABEL_NAMES = ("label", "target")
MISSING = "(missing)"
MISSING_RULES = ("impute", "refuse")


def _why(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def looks_local(path: str) -> bool:
    """A path the user means as a file or folder here (not a `datasets` hub id)."""
    p = user_path(path)
    return (p.exists() or path.startswith((".", "/", "~")) or p.suffix.lower() in TABLE_SUFFIXES
            or p.suffix.lower() in TEXT_SUFFIXES or "\\" in path)


# -- reading ---------------------------------------------------------------------------------------
def read_file(path: Path):
    """A local table file -> pyarrow Table, every way it can fail a one-line ConfigError."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    where = str(path)
    if not path.exists():
        raise ConfigError(f"data: {where}: file not found")
    if path.is_dir():
        raise ConfigError(f"data: {where}: is a folder, not a table file")
    if path.stat().st_size == 0:
        raise ConfigError(f"data: {where}: the file is empty")
    fmt = TABLE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"data: {where}: not a table file (expected {', '.join(sorted(TABLE_SUFFIXES))})")
    try:
        if fmt in ("csv", "tsv"):
            return pacsv.read_csv(where, parse_options=pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
                                  convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
        if fmt == "parquet":
            return pq.read_table(where)
        if fmt == "jsonl":
            return pajson.read_json(where)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            if "Extra data" in str(error):  # one object per line
                return pajson.read_json(where)
            raise
        if isinstance(data, list) and all(isinstance(row, dict) for row in data):
            return pa.Table.from_pylist(data)
        if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
            return pa.Table.from_pydict(data)
        raise ValueError("expected a list of records or an object of columns")
    except ConfigError:
        raise
    except Exception as error:  # pyarrow's parse errors, bad UTF-8, a broken parquet footer
        raise ConfigError(f"data: {where}: cannot be read as {fmt.upper()} ({_why(error)})") from None


def load_hub(path: str, split: str, name: str | None = None):
    """`datasets.load_dataset(path, split=split)` (a hub id or a local dataset folder) -> the Dataset."""
    import datasets

    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout belongs to --json
            return datasets.load_dataset(path, name, split=split)
    except Exception as error:  # not found, offline, unknown split: one line
        local = user_path(path).exists()
        where = "a local folder" if local else "not a local file or folder, and the Hugging Face hub could not be reached (offline?)"
        raise ConfigError(f"data: datasets.load_dataset({path!r}, split={split!r}) failed: {where} "
                          f"({type(error).__name__}: {_why(error)})") from None


def read_table(path: str, split: str = "train"):
    """A file (by its suffix), a local dataset folder or a hub id -> (pyarrow Table, class names by column)."""
    local = user_path(path)
    if local.is_file() or (looks_local(path) and not local.is_dir()):
        return read_file(local), {}
    dataset = load_hub(str(local) if local.is_dir() else path, split)
    names = {column: list(feature.names) for column, feature in dataset.features.items()
             if getattr(feature, "names", None)}
    return dataset.data.table, names


# -- what each column is ---------------------------------------------------------------------------
@dataclass
class Plan:
    """What a table holds: the label, each feature column's role and the label's kind."""

    columns: list[str]
    label: str
    label_said: str  # how the label was chosen, for the log
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    label_kind: str = "classes"  # "classes" | "regression"
    classes: list[str] = field(default_factory=list)

    @property
    def modality(self) -> str:
        return "images" if self.images else "text" if self.text else "table"

    def roles(self) -> dict[str, str]:
        out = {c: "numeric" for c in self.numeric}
        out.update({c: "categorical" for c in self.categorical})
        out.update({c: "text" for c in self.text})
        out.update({c: "image" for c in self.images})
        out.update({c: "dropped" for c in self.dropped})
        out[self.label] = "label"
        return {c: out.get(c, "ignored") for c in self.columns}


def pick_label(columns: list[str], label: str | None, exclude: tuple[str, ...] = ()) -> tuple[str, str]:
    """The label column and how it was chosen: the one asked for, else "label", "target", the last column."""
    if label:
        if label not in columns:
            raise ConfigError(f"data: label column {label!r} not found (columns: {', '.join(columns)})")
        return label, f"label column {label!r}"
    for name in LABEL_NAMES:
        if name in columns:
            return name, f"label column {name!r} (found by name; --label picks another)"
    candidates = [c for c in columns if c not in exclude]
    if not candidates:
        raise ConfigError(f"data: no column could be the label (columns: {', '.join(columns)})")
    return candidates[-1], (f"label column {candidates[-1]!r} (the last column: no 'label' or 'target' column; "
                            "--label picks another)")


def _is_image_column(column) -> bool:
    import pyarrow as pa

    kind = column.type
    if pa.types.is_struct(kind):
        return kind.get_field_index("bytes") >= 0
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        first = next((v for v in column.to_pylist()[:1] if v), b"")
        return first[:8] == b"\x89PNG\r\n\x1a\n" or first[:3] == b"\xff\xd8\xff" or first[:2] in (b"BM", b"GI")
    return False


def _strings(column) -> list[str | None]:
    return [None if v is None else str(v) for v in column.to_pylist()]


def plan_table(table, label: str | None = None, categorical: list[str] | None = None, drop: list[str] | None = None,
               max_categories: int = 50, max_classes: int = 50, class_names: dict[str, list[str]] | None = None) -> Plan:
    """Decide each column's role from its type and values (the whole table: structure, not statistics)."""
    import pyarrow as pa

    columns = list(table.column_names)
    if not columns:
        raise ConfigError("data: the table has no columns")
    if table.num_rows == 0:
        raise ConfigError(f"data: the table has no rows (columns: {', '.join(columns)})")
    repeated = next((c for c in columns if columns.count(c) > 1), None)
    if repeated is not None:  # a column is found by its name: two of a name cannot be told apart
        raise ConfigError(f"data: column {repeated!r} appears {columns.count(repeated)} times; rename the copies")
    for listed, what in ((categorical or [], "categorical"), (drop or [], "drop")):
        unknown = [c for c in listed if c not in columns]
        if unknown:
            raise ConfigError(f"data.args.{what}: column {unknown[0]!r} not found (columns: {', '.join(columns)})")
    images = [c for c in columns if _is_image_column(table[c])]
    chosen, said = pick_label(columns, label, exclude=tuple(images))
    plan = Plan(columns=columns, label=chosen, label_said=said, images=images, dropped=list(drop or []))
    for name in columns:
        if name == chosen or name in images or name in plan.dropped:
            continue
        column = table[name]
        kind = column.type
        if name in (categorical or []):
            plan.categorical.append(name)
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) \
                or pa.types.is_decimal(kind):
            plan.numeric.append(name)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
            values = [v for v in _strings(column) if v is not None]
            distinct = len(set(values))
            if distinct <= max_categories:
                plan.categorical.append(name)
            elif values and sum(len(v) for v in values) / len(values) >= 15 and \
                    sum(" " in v for v in values) >= len(values) / 2:
                plan.text.append(name)
            else:
                example = values[0] if values else ""
                raise ConfigError(f"data: column {name!r} cannot be read as features: text with {distinct} distinct "
                                  f"values (e.g. {example[:40]!r}), too many for categories (max_categories = "
                                  f"{max_categories}) and not sentences; drop it with data.args.drop = [{name!r}]")
        elif pa.types.is_null(kind):
            plan.dropped.append(name)  # an all-empty column carries nothing
        else:
            raise ConfigError(f"data: column {name!r} cannot be read as features (its type is {kind}); "
                              f"drop it with data.args.drop = [{name!r}]")
    if images and plan.text:
        plan.text = []
    target = table[chosen]
    kind = target.type
    names = (class_names or {}).get(chosen)
    present = [v for v in target.to_pylist() if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not present:
        raise ConfigError(f"data: label column {chosen!r} is empty")
    if names:
        plan.classes = list(names)
    elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        plan.label_kind = "regression"
    elif pa.types.is_integer(kind):
        distinct = sorted(set(int(v) for v in present))
        if len(distinct) > max_classes:
            plan.label_kind = "regression"
        else:
            plan.classes = [str(v) for v in distinct]
    elif pa.types.is_boolean(kind):
        plan.classes = sorted({str(v) for v in present})
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        plan.classes = sorted({str(v) for v in present})
        if len(plan.classes) > max_classes and not images and not plan.text:
            raise ConfigError(f"data: label column {chosen!r} has {len(plan.classes)} distinct values, more than "
                              f"max_classes = {max_classes} (is it the right column? --label picks another)")
    else:
        raise ConfigError(f"data: label column {chosen!r} has type {kind}: expected classes or numbers")
    if plan.label_kind == "classes" and len(plan.classes) < 2:
        raise ConfigError(f"data: label column {chosen!r} has a single class ({plan.classes[0]!r}): "
                          "nothing to learn to tell apart")
    if plan.label_kind == "regression" and len(set(present)) < 2:
        raise ConfigError(f"data: label column {chosen!r} holds one value ({present[0]!r}): nothing to predict")
    if plan.modality == "table" and not (plan.numeric or plan.categorical):
        raise ConfigError(f"data: no feature columns besides the label {chosen!r} (columns: {', '.join(columns)})")
    return plan


# -- the split -------------------------------------------------------------------------------------
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a cheap, well-spread 64-bit hash of 64-bit values."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _column_hash(column) -> np.ndarray:
    import pyarrow as pa

    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        values = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        values = np.where(np.isnan(values), np.float64(-1.2345e300), values) + 0.0  # one NaN, no -0.0
        return values.view(np.uint64)
    out = np.empty(len(column), dtype=np.uint64)
    seen: dict[Any, int] = {}
    for i, value in enumerate(column.to_pylist()):
        key = value if isinstance(value, (str, bytes, type(None))) else json.dumps(value, sort_keys=True, default=str)
        if key not in seen:
            raw = key if isinstance(key, bytes) else repr(key).encode()
            seen[key] = int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")
        out[i] = seen[key]
    return out


def held_out(table, fraction: float, seed: int) -> np.ndarray:
    """Rows for validation: a hash of each row's content (every column) and the seed, below `fraction`."""
    if not 0 < fraction < 1:
        raise ValueError("val_fraction must be between 0 and 1")
    with np.errstate(over="ignore"):
        h = _mix(np.full(table.num_rows, np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(1)))
        for index, name in enumerate(sorted(table.column_names)):
            h = _mix(h ^ (_column_hash(table[name]) + np.uint64(index + 1) * np.uint64(0x632BE59BD9B4E019)))
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53) < fraction


# -- features --------------------------------------------------------------------------------------
def _numeric(column) -> np.ndarray:
    import pyarrow as pa

    values = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    return values.copy()


def fit(plan: Plan, train, missing: str) -> dict[str, Any]:
    """What the features are learned from: the train rows only."""
    if missing not in MISSING_RULES:
        raise ValueError(f"missing must be one of {', '.join(MISSING_RULES)}")
    fitted: dict[str, Any] = {"label": plan.label, "label_kind": plan.label_kind, "classes": list(plan.classes),
                              "numeric": {}, "categorical": {}}
    for name in plan.numeric:
        values = _numeric(train[name])
        bad = ~np.isfinite(values)
        good = values[~bad]
        if not good.size:
            raise ConfigError(f"data: column {name!r} has no usable value in the training rows")
        std = float(good.std())
        fitted["numeric"][name] = {"mean": float(good.mean()), "std": std if std > 1e-12 else 1.0,
                                   "median": float(np.median(good)), "flag": bool(bad.any())}
    for name in plan.categorical:
        values = {MISSING if v is None else v for v in _strings(train[name])}
        fitted["categorical"][name] = sorted(values)
    if plan.label_kind == "regression":
        target = _numeric(train[plan.label])
        target = target[np.isfinite(target)]
        std = float(target.std())
        fitted["target"] = {"mean": float(target.mean()), "std": std if std > 1e-12 else 1.0}
    return fitted


def feature_names(fitted: dict[str, Any]) -> list[str]:
    names = []
    for name, stats in fitted["numeric"].items():
        names.append(name)
        if stats["flag"]:
            names.append(f"{name}_missing")
    for name, values in fitted["categorical"].items():
        names += [f"{name}={value}" for value in values]
    return names


def transform(fitted: dict[str, Any], rows, missing: str, where: str) -> np.ndarray:
    """Rows -> float32 features with the fitted statistics (never the rows' own)."""
    parts: list[np.ndarray] = []
    for name, stats in fitted["numeric"].items():
        if name not in rows.column_names:
            raise ConfigError(f"data: {where} has no column {name!r} (the run was set up with it)")
        values = _numeric(rows[name])
        bad = ~np.isfinite(values)
        if bad.any() and missing == "refuse":
            raise ConfigError(f"data: column {name!r} has {int(bad.sum())} missing or non-finite value(s) in {where} "
                              f"(data.args.missing = \"refuse\"; \"impute\" fills them with the train median)")
        values[bad] = stats["median"]
        parts.append((values - stats["mean"]) / stats["std"])
        if stats["flag"]:
            parts.append(bad.astype(np.float64))
    for name, categories in fitted["categorical"].items():
        if name not in rows.column_names:
            raise ConfigError(f"data: {where} has no column {name!r} (the run was set up with it)")
        values = _strings(rows[name])
        if missing == "refuse" and any(v is None for v in values):
            raise ConfigError(f"data: column {name!r} has {sum(v is None for v in values)} missing value(s) in "
                              f"{where} (data.args.missing = \"refuse\")")
        index = {value: i for i, value in enumerate(categories)}
        codes = np.array([index.get(MISSING if v is None else v, -1) for v in values], dtype=np.int64)
        onehot = np.zeros((len(values), len(categories)), dtype=np.float64)
        known = codes >= 0
        onehot[np.nonzero(known)[0], codes[known]] = 1.0
        parts.extend(onehot.T)
    if not parts:
        return np.zeros((rows.num_rows, 0), dtype=np.float32)
    return np.stack(parts, axis=1).astype(np.float32)


def labels(fitted: dict[str, Any], rows, where: str) -> np.ndarray:
    column = rows[fitted["label"]]
    if fitted["label_kind"] == "regression":
        target = fitted["target"]
        values = _numeric(column)
        if not np.isfinite(values).all():
            raise ConfigError(f"data: label column {fitted['label']!r} has non-finite values in {where}")
        return ((values - target["mean"]) / target["std"]).astype(np.float32)
    classes = fitted["classes"]
    index = {value: i for i, value in enumerate(classes)}
    raw = column.to_pylist()
    out = np.empty(len(raw), dtype=np.int64)
    for i, value in enumerate(raw):
        key = str(value)
        if key not in index:
            raise ConfigError(f"data: {where} has label {value!r}, which the training rows never show "
                              f"(classes: {', '.join(classes[:20])})")
        out[i] = index[key]
    return out


def _drop_unlabelled(table, label: str):
    import pyarrow.compute as pc

    column = table[label]
    keep = pc.invert(pc.is_null(column, nan_is_null=True))
    dropped = table.num_rows - pc.sum(keep.cast("int64")).as_py()
    return (table.filter(keep) if dropped else table), dropped


def _class_names_as_labels(table, label: str, names: dict[str, list[str]]):
    """ClassLabel indices -> their names, so classes are matched by name everywhere."""
    import pyarrow as pa

    if label not in names:
        return table
    values = [None if v is None else names[label][int(v)] for v in table[label].to_pylist()]
    return table.set_column(table.column_names.index(label), label, pa.array(values, pa.string()))


def image_and_label(table, label: str | None):
    """An images table reduced to its first image column and the label (other columns play no part)."""
    images = [c for c in table.column_names if _is_image_column(table[c])]
    if not images:
        raise ConfigError(f"data: no image column (columns: {', '.join(table.column_names)})")
    chosen, _ = pick_label(list(table.column_names), label, exclude=tuple(images))
    return table.select([images[0], chosen])


def load_tables(path: str, label: str | None, val_path: str | None, split: str, val_split: str | None,
                val_fraction: float, split_seed: int, categorical, drop, max_categories: int, max_classes: int,
                images: bool = False):
    """(plan, train rows, val rows, how the split was made, rows dropped) — for the builders and the summary."""
    table, names = read_table(path, split)
    if images:
        table = image_and_label(table, label)
    plan = plan_table(table, label, categorical, drop, max_categories, max_classes, names)
    table = _class_names_as_labels(table, plan.label, names)
    if names.get(plan.label):
        plan.classes = list(names[plan.label])
    table, unlabelled = _drop_unlabelled(table, plan.label)
    if val_path or val_split:
        if val_path:
            val, val_names = read_table(val_path, "train")
            source = f"validation from {val_path}"
        else:
            val, val_names = read_table(path, val_split)
            source = f"validation from split {val_split!r}"
        if images:
            val = image_and_label(val, plan.label)
        if plan.label not in val.column_names:
            raise ConfigError(f"data: the validation rows have no label column {plan.label!r} "
                              f"(columns: {', '.join(val.column_names)})")
        val = _class_names_as_labels(val, plan.label, val_names)
        val, _ = _drop_unlabelled(val, plan.label)
        train = table
    else:
        mask = held_out(table, val_fraction, split_seed)
        if not mask.any() and table.num_rows > 1:  # tiny tables: hold out at least one row
            mask[-1] = True
        train, val = table.filter(~mask), table.filter(mask)
        source = f"validation: {val_fraction:g} of the rows by a hash of their content (split_seed {split_seed})"
    if train.num_rows == 0 or val.num_rows == 0:
        raise ConfigError(f"data: {path}: {table.num_rows} row(s), too few to split into train and validation")
    if plan.label_kind == "classes" and not names.get(plan.label):
        # classes come from the training rows: a class seen only in validation can't be learned
        seen = sorted({str(v) for v in train[plan.label].to_pylist()})
        plan.classes = [c for c in plan.classes if c in seen]
        if len(plan.classes) < 2:
            raise ConfigError(f"data: label column {plan.label!r} has a single class in the training rows "
                              f"({plan.classes[0] if plan.classes else '-'!r}): nothing to learn to tell apart")
    return plan, train, val, source, unlabelled


def class_counts(plan: Plan, rows) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in rows[plan.label].to_pylist():
        key = str(value)
        counts[key] = counts.get(key, 0) + 1
    return {c: counts.get(c, 0) for c in plan.classes}


def table(
    seed: int,
    path: str = "",
    label: str | None = None,
    val_path: str | None = None,
    split: str = "train",
    val_split: str | None = None,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    categorical: list[str] | None = None,
    drop: list[str] | None = None,
    missing: str = "impute",
    max_categories: int = 50,
    max_classes: int = 50,
    num_classes: int | None = None,
    fitted: dict[str, Any] | None = None,
):
    """A table of features and a label (see the module docstring for every rule). `num_classes`, when set,
    must match the label's classes; `fitted` is the run's stored statistics (set by the trainer on resume)."""
    import torch
    from torch.utils.data import TensorDataset

    from workbench.data.base import DataBundle, DataInfo

    if not path:
        raise ValueError("path is required: a .csv/.tsv/.parquet/.json/.jsonl file or a datasets id")
    if missing not in MISSING_RULES:
        raise ValueError(f"missing must be one of {', '.join(MISSING_RULES)}")
    plan, train, val, source, unlabelled = load_tables(path, label, val_path, split, val_split, val_fraction,
                                                       split_seed, categorical, drop, max_categories, max_classes)
    if plan.modality != "table":
        column = (plan.images or plan.text)[0]
        raise ConfigError(f"data: column {column!r} holds {plan.modality}; use data.kind = "
                          f"{'images' if plan.images else 'hf'} (what --data picks) for this file")
    if unlabelled:
        notice(f"data: dropped {unlabelled} row(s) with no {plan.label!r}")
    restored = fitted is not None
    if fitted is None:
        fitted = fit(plan, train, missing)
    train_x = transform(fitted, train, missing, "the training rows")
    val_x = transform(fitted, val, missing, "the validation rows")
    train_y, val_y = labels(fitted, train, "the training rows"), labels(fitted, val, "the validation rows")
    classes = fitted["classes"]
    if num_classes is not None and fitted["label_kind"] == "classes" and num_classes != len(classes):
        raise ConfigError(f"data.args.num_classes = {num_classes}, but label {plan.label!r} has {len(classes)} "
                          f"classes ({', '.join(classes[:10])})")
    width = train_x.shape[1]
    task = "regression" if fitted["label_kind"] == "regression" else "classification"
    extra: dict[str, Any] = {"source": f"table:{path}", "features": feature_names(fitted), "fitted": fitted,
                             "standardized": True, "train_size": int(train.num_rows), "val_size": int(val.num_rows)}
    if task == "classification":
        extra["classes"] = list(classes)
        counts = class_counts(plan, train)
        summary = f"{len(classes)} classes ({', '.join(f'{c}: {n}' for c, n in list(counts.items())[:8])})"
    else:
        extra["target_scale"] = fitted["target"]["std"]
        extra["target_mean"] = fitted["target"]["mean"]
        summary = (f"a number to predict (regression; standardised with train mean {fitted['target']['mean']:.4g}, "
                   f"std {fitted['target']['std']:.4g})")
    notice(f"data: {path}: {train.num_rows} train / {val.num_rows} val rows ({source}); {len(fitted['numeric'])} "
           f"numeric and {len(fitted['categorical'])} categorical column(s) -> {width} features"
           f"{' (statistics restored from the run)' if restored else ', standardised with train statistics'}; "
           f"{plan.label_said}: {summary}")
    info = DataInfo(task=task, num_classes=len(classes) if task == "classification" else None,
                    input_shape=(width,), extra=extra)
    y_dtype = torch.long if task == "classification" else torch.float32
    return DataBundle(TensorDataset(torch.from_numpy(train_x), torch.as_tensor(train_y, dtype=y_dtype)),
                      TensorDataset(torch.from_numpy(val_x), torch.as_tensor(val_y, dtype=y_dtype)), info)
