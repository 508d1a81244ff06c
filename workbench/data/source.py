"""`--data PATH_OR_ID`: look at what a file, folder or `datasets` id holds and say which `[data]` trains on it.

`describe_source(path, label, preset)` reads the data (pyarrow, PIL; never torch), decides the modality
and returns a `DataChoice`: the `[data]` kind and args, the task and loss the label calls for, and a
summary (rows, columns and their roles, classes and their counts, image size) that the CLI prints and
the form shows. `as_overrides()` turns it into ordinary `--set` overrides, so what --data chose is stored
in the run's config like any other key: resume, compare, sweeps, --detach and "save as preset" keep it.

The modality:
- a folder of sub-folders of images (one per class) -> `image_folder`;
- a .txt/.md file, or a folder of .txt files -> `text_file` (language modelling);
- a table file (.csv .tsv .parquet .json .jsonl), a dataset folder or a hub id -> by its columns: an image
  column -> `images`; a column of sentences -> `hf` (text classification); otherwise -> `table`.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.data.tables import (IMAGE_SUFFIXES, TABLE_SUFFIXES, TEXT_SUFFIXES, class_counts, load_hub,
                                   looks_local, plan_table, read_file, _class_names_as_labels)
from workbench.errors import ConfigError
from workbench.paths import user_path

# Arguments of the preset's own data that keep their meaning on the user's data (the image size the
# model was tuned for, its augmentation, the text presets' tokenizer and lengths), by the kind chosen.
CARRIED = {
    "image_folder": ("image_size", "augment", "flip", "channels", "normalize"),
    "images": ("image_size", "augment", "flip", "channels", "normalize"),
    "text_file": ("tokenizer", "vocab_size", "block_size", "stride", "format", "prompt"),
    "hf": ("tokenizer", "vocab_size", "seq_len", "block_size", "stride", "format", "prompt"),
    "table": (),
}
SOURCES = ("generated", "file", "folder", "hub")
# A folder given to --data (or as a folder loader's root) is looked at up to this many files and folders in
# all (`--data /` or `~` would otherwise walk the whole disk); a bigger one is refused, naming the cap.
MAX_SCAN = 100_000


@dataclass
class DataChoice:
    """What --data found and the [data] section (plus task and loss) that trains on it."""

    path: str
    modality: str  # table | images | text | text_lm
    kind: str
    args: dict[str, Any]
    task: str
    loss: str
    rows: int
    label: str | None = None
    label_said: str = ""
    columns: dict[str, str] = field(default_factory=dict)  # name -> role
    classes: dict[str, int] = field(default_factory=dict)  # class -> rows
    target: dict[str, float] = field(default_factory=dict)  # regression: min / mean / max
    image_size: tuple[int, int] | None = None
    image_mode: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_overrides(self, preset) -> list[str]:
        """`--set` overrides that put this choice into a preset (only the keys that change)."""
        out = [f"data.kind={_toml(self.kind)}", f"data.args={_toml(self.args)}"]
        if self.task != preset.task:
            out.append(f"task={_toml(self.task)}")
        if self.loss != preset.train.loss:
            out.append(f"train.loss={_toml(self.loss)}")
        return out

    def summary_lines(self) -> list[str]:
        """The summary shown before training: what the data is and how each column is used."""
        what = {"table": "a table", "images": "images", "text": "labelled texts", "text_lm": "text"}[self.modality]
        lines = [f"{self.path}: {what}, {self.rows:,} {'images' if self.modality == 'images' else 'rows' if self.modality != 'text_lm' else 'characters'} -> data.kind = {self.kind!r}, task = {self.task!r}, loss = {self.loss!r}"]
        if self.columns:
            by_role: dict[str, list[str]] = {}
            for name, role in self.columns.items():
                by_role.setdefault(role, []).append(name)
            lines.append("columns: " + "; ".join(f"{role} {', '.join(names[:12])}{' …' if len(names) > 12 else ''}"
                                                 for role, names in by_role.items()))
        if self.label:
            lines.append(self.label_said)
        if self.classes:
            lines.append(f"{len(self.classes)} classes: " + ", ".join(f"{c} ({n:,})" for c, n in list(self.classes.items())[:12])
                         + (" …" if len(self.classes) > 12 else ""))
        if self.target:
            lines.append("a number to predict: min {min:.4g}, mean {mean:.4g}, max {max:.4g}".format(**self.target))
        if self.image_size:
            size = self.args.get("image_size", 32)
            lines.append(f"images {self.image_size[0]}x{self.image_size[1]} {self.image_mode}, trained at "
                         f"{size}x{size} with {self.args.get('channels', 3)} channel(s)")
        return lines + self.notes


def _toml(value: Any) -> str:
    """A value as inline TOML (JSON's strings, numbers and arrays are TOML's too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def _carried(preset, kind: str) -> dict[str, Any]:
    if preset is None or preset.data.kind == "custom":
        return {}
    return {k: v for k, v in preset.data.args.items() if k in CARRIED[kind]}


def _task_and_loss(preset, label_kind: str, n_classes: int, notes: list[str]) -> tuple[str, str]:
    loss = preset.train.loss if preset is not None else "cross_entropy"
    if label_kind == "regression":
        task = "regression"
        if loss not in ("mse", "l1", "model"):
            notes.append(f"train.loss: {loss} -> mse (the label is a number to predict)")
            loss = "mse"
        return task, loss
    if n_classes == 2 and loss == "bce_with_logits":
        return "binary", loss
    if loss not in ("cross_entropy", "nll", "model"):
        notes.append(f"train.loss: {loss} -> cross_entropy ({n_classes} classes)")
        loss = "cross_entropy"
    return "classification", loss


class FolderTooBig(ValueError):
    """A folder with more than MAX_SCAN files and folders under it (the scan stopped there)."""


def scan_files(root: Path, follow_links: bool = False) -> list[Path]:
    """Every file under `root`, sorted, looking at no more than MAX_SCAN files and folders; more is
    FolderTooBig. Symlinked folders are followed in `root` itself (linked class folders), or at every depth
    with `follow_links`, as torchvision's ImageFolder walks: then a link to `/` or a link loop deep inside
    runs into the bound here, before ImageFolder would walk it. Unreadable folders are skipped. The one
    bounded walk: --data and the training-time folder loaders."""
    files: list[Path] = []
    seen = 0
    folders = [str(root)]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    seen += 1
                    if seen > MAX_SCAN:
                        links = " (symlinked folders followed)" if follow_links else ""
                        raise FolderTooBig(f"holds more than {MAX_SCAN:,} files and folders{links} "
                                           "(looked no further)")
                    if entry.is_dir(follow_symlinks=follow_links or folder == str(root)):
                        folders.append(entry.path)
                    elif entry.is_file():
                        files.append(Path(entry.path))
        except OSError:
            continue
    return sorted(files)


def _image_folder(root: Path, files: list[Path]) -> dict[str, list[Path]] | None:
    """class -> image files, when root holds one sub-folder of images per class."""
    classes: dict[str, list[Path]] = {}
    for file in files:
        parts = file.relative_to(root).parts
        if len(parts) >= 2 and not parts[0].startswith(".") and file.suffix.lower() in IMAGE_SUFFIXES:
            classes.setdefault(parts[0], []).append(file)
    return dict(sorted(classes.items())) or None


GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _fit_images(args: dict[str, Any], size: tuple[int, int] | None, mode: str | None) -> None:
    """What the preset leaves open comes from the images: their size (up to 64 pixels a side; larger
    ones are trained at 64 unless the preset or --set says otherwise) and one channel for grayscale."""
    if size is None:
        return
    args.setdefault("image_size", max(8, min(64, max(size))))
    if mode in GRAYSCALE_MODES:
        args.setdefault("channels", 1)


def _image_info(opener) -> tuple[tuple[int, int], str]:
    try:
        with opener() as image:
            return image.size, image.mode
    except Exception as error:
        raise ConfigError(f"data: an image cannot be read ({type(error).__name__}: {str(error)[:120]})") from None


def describe_source(path: str, label: str | None = None, preset=None) -> DataChoice:
    """What `path` holds and the [data] that trains on it; a ConfigError (one line) when it cannot train."""
    if not path or not str(path).strip():
        raise ConfigError("--data: give a file, a folder or a datasets id")
    path = str(path).strip()
    local = user_path(path)
    notes: list[str] = []
    if local.is_dir():
        try:
            files = scan_files(local)
        except FolderTooBig as error:
            raise ConfigError(f"--data: {path} {error}: give the folder that holds only your data") from None
        folders = _image_folder(local, files)
        if folders:
            return _from_image_folder(local.resolve(), folders, label, preset, notes)
        texts = [p for p in files if p.suffix == ".txt"]
        tables = [p for p in files if p.suffix.lower() in TABLE_SUFFIXES]
        if texts and not tables:
            return _from_text(local.resolve(), texts, label, preset, notes)
        return _from_table(str(local.resolve()), label, preset, notes)
    if looks_local(path):
        if not local.exists():
            raise ConfigError(f"--data: {path}: file not found")
        suffix = local.suffix.lower()
        if suffix in TEXT_SUFFIXES:
            return _from_text(local.resolve(), [local], label, preset, notes)
        if suffix in IMAGE_SUFFIXES:
            raise ConfigError(f"--data: {path} is one image; give the folder that holds one sub-folder of images per class")
        if suffix not in TABLE_SUFFIXES:
            raise ConfigError(f"--data: {path}: unknown file type {suffix or '(none)'} (tables: "
                              f"{', '.join(sorted(TABLE_SUFFIXES))}; text: {', '.join(sorted(TEXT_SUFFIXES))}; or a folder)")
        return _from_table(str(local.resolve()), label, preset, notes)
    return _from_table(path, label, preset, notes)  # a datasets hub id


def _from_image_folder(root: Path, folders: dict[str, list[Path]], label, preset, notes) -> DataChoice:
    from PIL import Image

    if label:
        raise ConfigError("--label: an image folder's classes are its sub-folders; there is no label column")
    if len(folders) < 2:
        raise ConfigError(f"--data: {root} has a single class folder ({next(iter(folders))!r}): nothing to learn "
                          "to tell apart")
    size, mode = _image_info(lambda: Image.open(next(iter(folders.values()))[0]))
    args = {"root": str(root), **_carried(preset, "image_folder")}
    _fit_images(args, size, mode)
    task, loss = _task_and_loss(preset, "classes", len(folders), notes)
    return DataChoice(str(root), "images", "image_folder", args, task, loss, sum(map(len, folders.values())),
                      classes={c: len(f) for c, f in folders.items()}, image_size=size, image_mode=mode, notes=notes)


def _from_text(path: Path, files: list[Path], label, preset, notes) -> DataChoice:
    if label:
        raise ConfigError("--label: plain text has no label column (for labelled texts use a CSV/JSONL table)")
    chars = 0
    for file in files:
        try:
            chars += len(file.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"--data: {file} is not UTF-8 text") from None
    if chars == 0:
        raise ConfigError(f"--data: {path}: the text is empty")
    args = {"path": str(path), **_carried(preset, "text_file")}
    loss = preset.train.loss if preset is not None and preset.train.loss in ("cross_entropy", "model") else "cross_entropy"
    return DataChoice(str(path), "text_lm", "text_file", args, "language_modeling", loss, chars, notes=notes)


VAL_SPLITS = ("validation", "valid", "val", "test")


def _val_split(path: str) -> str | None:
    """A dataset's own held-out split (validation, then test), when it has one."""
    import datasets

    try:
        splits = {str(s) for s in (datasets.load_dataset_builder(path).config.data_files or {})}
    except Exception:  # a script dataset, an odd layout: fall back to the hashed fraction
        return None
    return next((s for s in VAL_SPLITS if s in splits), None)


def _from_table(path: str, label, preset, notes) -> DataChoice:
    local = Path(path)
    held = None
    if local.is_file():
        table, names = read_file(local), {}
    else:
        dataset = load_hub(path, "train")
        table = dataset.data.table
        names = {c: list(f.names) for c, f in dataset.features.items() if getattr(f, "names", None)}
        held = _val_split(path)
        if held:
            notes.append(f"validation: the dataset's own {held!r} split")
    plan = plan_table(table, label, class_names=names)
    table = _class_names_as_labels(table, plan.label, names)
    if plan.modality == "images":
        kind, args = "images", {"path": path, "label": plan.label, **_carried(preset, "images")}
        first = next((v for v in table[plan.images[0]].to_pylist() if v), None)
        size = mode = None
        if first is not None:
            try:
                from PIL import Image

                raw = first.get("bytes") if isinstance(first, dict) else first
                with Image.open(io.BytesIO(raw)) if raw else Image.open(first["path"]) as image:
                    size, mode = image.size, image.mode
            except Exception as error:
                raise ConfigError(f"data: column {plan.images[0]!r}: the first image cannot be read "
                                  f"({type(error).__name__})") from None
        _fit_images(args, size, mode)
    elif plan.modality == "text":
        text = max(plan.text, key=lambda c: sum(len(str(v or "")) for v in table[c].to_pylist()))
        kind = "hf"
        args = {"path": path, "text_field": text, "label_field": plan.label, **_carried(preset, "hf")}
        size = mode = None
        notes.append(f"text column {text!r} is the input; other columns are not used")
    else:
        kind, args, size, mode = "table", {"path": path, "label": plan.label}, None, None
    if held:
        args["val_split"] = held
    task, loss = _task_and_loss(preset, plan.label_kind, len(plan.classes), notes)
    if plan.modality != "table" and plan.label_kind == "regression":
        raise ConfigError(f"data: label column {plan.label!r} holds numbers; {plan.modality} presets classify "
                          "(use --label to pick a column of classes)")
    choice = DataChoice(path, {"images": "images", "text": "text"}.get(plan.modality, "table"), kind, args, task,
                        loss, table.num_rows, label=plan.label, label_said=plan.label_said, columns=plan.roles(),
                        image_size=size, image_mode=mode, notes=notes)
    if plan.label_kind == "classes":
        choice.classes = class_counts(plan, table)
    else:
        import numpy as np

        from workbench.data.tables import _numeric

        values = _numeric(table[plan.label])
        values = values[np.isfinite(values)]
        choice.target = {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())}
    return choice


__all__ = ["DataChoice", "FolderTooBig", "MAX_SCAN", "SOURCES", "describe_source", "scan_files"]
