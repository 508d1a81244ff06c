"""Real data: torchvision datasets, Hugging Face `datasets`, and a user's own text files or image folders.

Each loader turns "can't find it / can't fetch it" into a one-line ConfigError that says what could
not be loaded and what to do, never a traceback. Images are loaded once into uint8 tensors and
augmented per batch (the same fast path as the shapes data); text goes through the same tokenizers
and bundles as the stdlib tasks, so every model that trains on those trains on these.

torchvision, datasets and PIL are imported inside the loaders.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import torch

from workbench.data.base import DataBundle, DataInfo
from workbench.data.batched import BatchedDataset, classification_bundle, lm_bundle, passthrough
from workbench.data.images import IMAGENET_MEAN, IMAGENET_STD, ImageTransform
from workbench.data.vocab import make_tokenizer
from workbench.errors import ConfigError
from workbench.paths import user_path

# name -> (how the train/test split is chosen, whether a horizontal flip keeps the label)
TORCHVISION = {
    "MNIST": ("train", False),
    "FashionMNIST": ("train", True),
    "KMNIST": ("train", False),
    "QMNIST": ("train", False),
    "CIFAR10": ("train", True),
    "CIFAR100": ("train", True),
    "SVHN": ("split", False),
}


def default_data_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workbench" / "datasets"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200]}" if text else type(error).__name__


def _image_bundle(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
                  classes: list[str], image_size: int | None, augment: bool, flip: bool, normalize: str,
                  extra: dict[str, Any]) -> DataBundle:
    """uint8 (N, C, H, W) images -> BatchedDatasets with per-batch augmentation (train) and normalisation."""
    if normalize == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif normalize == "dataset":
        pixels = train_x[: min(len(train_x), 10_000)].float() / 255
        mean = tuple(pixels.mean(dim=(0, 2, 3)).tolist())
        std = tuple(pixels.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist())
    else:
        raise ValueError("normalize must be 'imagenet' or 'dataset'")
    channels, height = train_x.shape[1], train_x.shape[2]
    size = image_size or height
    padding = max(1, height // 8)
    train_tf = ImageTransform(augment, image_size, mean, std, crop_padding=padding, flip=flip)
    val_tf = ImageTransform(False, image_size, mean, std)
    info = DataInfo(task="classification", num_classes=len(classes), input_shape=(channels, size, size),
                    collate=passthrough, extra={"classes": list(classes), "mean": mean, "std": std, **extra})
    return DataBundle(BatchedDataset(train_x, train_y, train_tf), BatchedDataset(val_x, val_y, val_tf), info)


def _as_images(data: Any) -> torch.Tensor:
    """torchvision's in-memory arrays (N, H, W) / (N, H, W, C) / (N, C, H, W) -> uint8 (N, C, H, W)."""
    tensor = torch.as_tensor(data)
    if tensor.dim() == 3:
        return tensor.unsqueeze(1).to(torch.uint8)
    if tensor.shape[-1] in (1, 3) and tensor.shape[1] not in (1, 3):
        tensor = tensor.permute(0, 3, 1, 2)
    return tensor.contiguous().to(torch.uint8)


def torchvision_dataset(
    seed: int,
    name: str = "CIFAR10",
    root: str | None = None,
    download: bool = True,
    image_size: int | None = None,
    augment: bool = True,
    normalize: str = "imagenet",
    train_size: int | None = None,
    val_size: int | None = None,
) -> DataBundle:
    """A torchvision dataset (MNIST, FashionMNIST, KMNIST, QMNIST, CIFAR10, CIFAR100, SVHN): its train
    split for training, its test split for validation. root defaults to $XDG_CACHE_HOME/workbench/datasets;
    download fetches it when missing (needs the network). train_size / val_size keep the first N."""
    if name not in TORCHVISION:
        raise ValueError(f"unknown torchvision dataset {name!r} (supported: {', '.join(TORCHVISION)})")
    if image_size is not None and not 8 <= image_size <= 512:
        raise ValueError("image_size must be between 8 and 512")
    import torchvision

    folder = user_path(root) if root else default_data_root()
    split_kind, flips = TORCHVISION[name]
    cls = getattr(torchvision.datasets, name)

    def load(train: bool):
        kwargs = {"split": "train" if train else "test"} if split_kind == "split" else {"train": train}
        # torchvision reports failed mirrors on stdout; stdout belongs to `--json`
        with contextlib.redirect_stdout(sys.stderr):
            return cls(str(folder), download=download, **kwargs)

    try:
        train_set, val_set = load(True), load(False)
    except Exception as error:  # RuntimeError (not found), URLError/OSError (no network), bad archives
        if download:
            why = f"could not be downloaded to {folder} (offline? put the files there, or check the network)"
        else:
            why = f"was not found in {folder} (set data.args.download = true to fetch it)"
        raise ConfigError(f"data: torchvision {name} {why} ({_first_line(error)})") from None

    def tensors(dataset, limit: int | None):
        x = _as_images(dataset.data)
        y = torch.as_tensor(getattr(dataset, "targets", None) if hasattr(dataset, "targets") else dataset.labels)
        if y.dim() > 1:  # QMNIST keeps extra columns; the class is the first
            y = y[:, 0]
        if limit:
            x, y = x[:limit], y[:limit]
        return x, y.long()

    train_x, train_y = tensors(train_set, train_size)
    val_x, val_y = tensors(val_set, val_size)
    classes = list(getattr(train_set, "classes", None) or [str(i) for i in range(int(train_y.max()) + 1)])
    return _image_bundle(train_x, train_y, val_x, val_y, classes, image_size, augment, flips, normalize,
                         {"source": f"torchvision:{name}", "root": str(folder)})


def _open_images(paths: list[str], size: int, channels: int) -> torch.Tensor:
    from PIL import Image

    out = torch.empty((len(paths), channels, size, size), dtype=torch.uint8)
    mode = "RGB" if channels == 3 else "L"
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            image = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            array = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
            out[i] = array.view(size, size, channels).permute(2, 0, 1)
    return out


def _bounded(path: Path, what: str, holding: str, follow_links: bool = False) -> list[Path]:
    """The files under a folder loader's root, or a one-line refusal past the --data scan's bound (a root
    of `/` or `~` would walk the whole disk)."""
    from workbench.data.source import FolderTooBig, scan_files

    try:
        return scan_files(path, follow_links)
    except FolderTooBig as error:
        raise ValueError(f"{what} {str(path)!r} {error}: give the folder that holds {holding}") from None


def _folder(root: str, what: str):
    from torchvision.datasets import ImageFolder

    path = user_path(root)
    if not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is not a directory (expected one sub-folder of images per class)")
    _bounded(path, what, "one sub-folder of images per class", follow_links=True)  # as ImageFolder walks
    try:
        return ImageFolder(str(path))
    except (FileNotFoundError, RuntimeError) as error:
        raise ValueError(f"{what} {str(path)!r}: {_first_line(error)}") from None


def image_folder(
    seed: int,
    root: str = "",
    val_root: str | None = None,
    val_fraction: float = 0.2,
    image_size: int = 32,
    channels: int = 3,
    augment: bool = True,
    flip: bool = True,
    normalize: str = "imagenet",
) -> DataBundle:
    """Your own images: root/<class>/<image> (torchvision ImageFolder layout), resized to image_size and
    held in memory. Validation: val_root with the same classes, or a fixed val_fraction of root."""
    if not root:
        raise ValueError("root is required: a folder with one sub-folder of images per class")
    if channels not in (1, 3):
        raise ValueError("channels must be 1 or 3")
    if not 8 <= image_size <= 512:
        raise ValueError("image_size must be between 8 and 512")
    train_set = _folder(root, "root")
    samples = list(train_set.samples)
    if val_root:
        val_set = _folder(val_root, "val_root")
        if val_set.classes != train_set.classes:
            raise ValueError(f"val_root classes {val_set.classes} differ from root classes {train_set.classes}")
        train_samples, val_samples = samples, list(val_set.samples)
    else:
        if not 0 < val_fraction < 1:
            raise ValueError("val_fraction must be between 0 and 1")

        def held_out(path: str) -> bool:  # by file name: stable however the folder is listed
            digest = hashlib.blake2b(Path(path).name.encode(), digest_size=8).digest()
            return int.from_bytes(digest, "big") / 2**64 < val_fraction

        train_samples = [s for s in samples if not held_out(s[0])]
        val_samples = [s for s in samples if held_out(s[0])]
        if not val_samples and len(train_samples) > 1:  # tiny folders: hold out at least one image
            val_samples = [train_samples.pop()]
    if not train_samples or not val_samples:
        raise ValueError(f"root {root!r}: not enough images to split into train and val")
    try:
        train_x = _open_images([p for p, _ in train_samples], image_size, channels)
        val_x = _open_images([p for p, _ in val_samples], image_size, channels)
    except OSError as error:
        raise ValueError(f"could not read an image: {_first_line(error)}") from None
    train_y = torch.tensor([label for _, label in train_samples], dtype=torch.long)
    val_y = torch.tensor([label for _, label in val_samples], dtype=torch.long)
    return _image_bundle(train_x, train_y, val_x, val_y, train_set.classes, None, augment, flip, normalize,
                         {"source": f"image_folder:{root}"})


def _read_texts(path: Path, pattern: str, encoding: str) -> list[str]:
    if path.is_dir():
        files = [p for p in _bounded(path, "path", "only your text files") if p.relative_to(path).match(pattern)]
        if not files:
            raise ValueError(f"no files matching {pattern!r} under {str(path)!r}")
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"path {str(path)!r} not found")
    texts = []
    for file in files:
        try:
            texts.append(file.read_text(encoding=encoding))
        except UnicodeDecodeError:
            raise ValueError(f"{str(file)!r} is not {encoding} text (set data.args.encoding)") from None
        except OSError as error:
            raise ValueError(f"cannot read {str(file)!r}: {_first_line(error)}") from None
    return texts


def _split_lm(texts: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """The last val_fraction of every text is validation."""
    if not 0 < val_fraction < 0.5:
        raise ValueError("val_fraction must be between 0 and 0.5")
    cuts = [int(len(text) * (1 - val_fraction)) for text in texts]
    return [t[:c] for t, c in zip(texts, cuts)], [t[c:] for t, c in zip(texts, cuts)]


def _lm_from_texts(texts: list[str], seed: int, tokenizer: str, vocab_size: int, block_size: int, stride: int,
                   val_fraction: float, format: str, prompt: str, extra: dict[str, Any]) -> DataBundle:
    train_parts, val_parts = _split_lm(texts, val_fraction)
    train_text, val_text = "\n".join(train_parts), "\n".join(val_parts)
    tok = make_tokenizer(tokenizer, [train_text, val_text] if tokenizer == "chars" else train_parts, vocab_size)
    return lm_bundle(tok.encode_stream(train_text), tok.encode_stream(val_text), tok, block_size, stride, format,
                     seed, prompt, extra)


def text_file(
    seed: int,
    path: str = "",
    pattern: str = "*.txt",
    encoding: str = "utf-8",
    tokenizer: str = "chars",
    vocab_size: int = 2048,
    block_size: int = 128,
    stride: int = 1,
    val_fraction: float = 0.1,
    format: str = "ids",
    prompt: str = "\n",
) -> DataBundle:
    """Language modelling on your own text: one file, or every file matching `pattern` under a folder.
    The last val_fraction of each file is validation."""
    if not path:
        raise ValueError("path is required: a text file or a folder of them")
    texts = _read_texts(user_path(path), pattern, encoding)
    return _lm_from_texts(texts, seed, tokenizer, vocab_size, block_size, stride, val_fraction, format, prompt,
                          {"source": f"text_file:{path}"})


_LOCAL_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".txt": "text",
                   ".parquet": "parquet"}


def _load_split(path: str, name: str | None, split: str, data_files: Any):
    import datasets

    builder, files = path, data_files
    local = user_path(path)
    if local.is_file() and local.suffix.lower() in _LOCAL_BUILDERS:  # a bare local file
        builder, files = _LOCAL_BUILDERS[local.suffix.lower()], str(local)
    kwargs: dict[str, Any] = {"split": split}
    if files is not None:
        kwargs["data_files"] = files
    if builder == "csv" and local.suffix.lower() == ".tsv":
        kwargs["delimiter"] = "\t"
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return datasets.load_dataset(builder, name, **kwargs)
    except Exception as error:  # not found, offline, bad split/config: all one line
        where = ("a local file" if local.exists() else
                 "not a local file or folder, and the Hugging Face hub could not be reached (offline?)")
        raise ConfigError(f"data: datasets.load_dataset({path!r}"
                          f"{', ' + repr(name) if name else ''}, split={split!r}) failed: {where} "
                          f"({_first_line(error)})") from None


def hf_dataset(
    seed: int,
    path: str = "",
    name: str | None = None,
    split: str = "train",
    val_split: str | None = None,
    data_files: Any = None,
    text_field: str = "text",
    label_field: str = "label",
    task: str = "classification",
    tokenizer: str = "words",
    vocab_size: int = 5000,
    seq_len: int = 64,
    block_size: int = 128,
    stride: int = 1,
    val_fraction: float = 0.1,
    max_samples: int | None = None,
    format: str = "ids",
    prompt: str = "\n",
) -> DataBundle:
    """A Hugging Face dataset via datasets.load_dataset(path, name, split=...): a hub id, a local folder,
    a builder with data_files ("csv", "json", "text"), or a bare local .csv/.json/.jsonl/.txt file.

    task = "classification": text_field + label_field (ints or strings) -> labelled texts.
    task = "language_modeling": text_field only, joined into one stream -> next-token windows.
    Validation: val_split if given, else a fixed val_fraction of `split`.
    """
    if not path:
        raise ValueError("path is required (a hub dataset id, a local folder or file, or 'csv'/'json'/'text')")
    if task not in ("classification", "language_modeling"):
        raise ValueError("task must be 'classification' or 'language_modeling'")
    train = _load_split(path, name, split, data_files)
    columns = list(train.column_names)
    needed = [text_field] + ([label_field] if task == "classification" else [])
    missing = [field for field in needed if field not in columns]
    if missing:
        raise ConfigError(f"data.args: field {missing[0]!r} is not in the dataset (columns: {', '.join(columns)}); "
                          f"set data.args.{'text_field' if missing[0] == text_field else 'label_field'}")
    if val_split:
        val = _load_split(path, name, val_split, data_files)
    else:
        if not 0 < val_fraction < 0.5:
            raise ValueError("val_fraction must be between 0 and 0.5")
        if len(train) < 2:
            raise ValueError("the dataset has fewer than two rows")
        parts = train.train_test_split(test_size=val_fraction, seed=1234, shuffle=True)
        train, val = parts["train"], parts["test"]
    if max_samples:
        train = train.select(range(min(max_samples, len(train))))
    extra = {"source": f"hf:{path}" + (f"/{name}" if name else "")}
    if task == "language_modeling":
        train_text = "\n".join(t for t in train[text_field] if t)
        val_text = "\n".join(t for t in val[text_field] if t)
        if tokenizer == "chars":
            tok = make_tokenizer(tokenizer, [train_text, val_text], vocab_size)
        else:
            tok = make_tokenizer(tokenizer, [t for t in train[text_field] if t], vocab_size)
        return lm_bundle(tok.encode_stream(train_text), tok.encode_stream(val_text), tok, block_size, stride,
                         format, seed, prompt, extra)
    feature = train.features.get(label_field)
    names = list(getattr(feature, "names", None) or [])
    train_labels, val_labels = list(train[label_field]), list(val[label_field])
    if not names:  # plain ints or strings: classes are the sorted distinct values
        if all(isinstance(v, int) for v in train_labels + val_labels):
            values = [str(v) for v in sorted({int(v) for v in train_labels + val_labels})]
        else:
            values = sorted({str(v) for v in train_labels + val_labels})
        names = values
        index = {value: i for i, value in enumerate(values)}
        train_labels = [index[str(v)] for v in train_labels]
        val_labels = [index[str(v)] for v in val_labels]
    texts = [str(t) if t is not None else "" for t in train[text_field]]
    val_texts = [str(t) if t is not None else "" for t in val[text_field]]
    tok = make_tokenizer(tokenizer, texts, vocab_size)
    return classification_bundle((texts, train_labels), (val_texts, val_labels), names, tok, seq_len, format, extra)
