"""Images from `datasets`: a table with an image column (a hub id, a local `imagefolder` or dataset
folder, or a Parquet/JSONL file holding image bytes) -> uint8 tensors at `image_size`, augmented per
batch like the shapes and image-folder data, for the CNN and ResNet presets.

The label follows the table rules (`label`, then "target", then the last non-image column; a
`ClassLabel` keeps its names); validation is `val_split`, `val_path`, or a content-hash fraction.
"""

from __future__ import annotations

import io
from typing import Any

import torch

from workbench.data.base import DataBundle
from workbench.data.real import _image_bundle
from workbench.data.tables import class_counts, load_tables
from workbench.errors import ConfigError
from workbench.notices import notice


def decode_image(value: Any, size: int | None, mode: str):
    """One cell of an image column ({"bytes", "path"} or raw bytes) -> a PIL image in `mode`, resized."""
    from PIL import Image

    raw, path = (value.get("bytes"), value.get("path")) if isinstance(value, dict) else (value, None)
    if raw:
        image = Image.open(io.BytesIO(raw))
    elif path:
        image = Image.open(path)
    else:
        raise ValueError("an empty image cell")
    image = image.convert(mode)
    if size:
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return image


def decode_column(values: list[Any], size: int, channels: int, where: str) -> torch.Tensor:
    mode = "RGB" if channels == 3 else "L"
    out = torch.empty((len(values), channels, size, size), dtype=torch.uint8)
    for i, value in enumerate(values):
        try:
            image = decode_image(value, size, mode)
        except Exception as error:  # PIL's UnidentifiedImageError, a missing file, truncated bytes
            raise ConfigError(f"data: image {i} of {where} cannot be read ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:120] if str(error) else ''})") from None
        out[i] = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(size, size, channels).permute(2, 0, 1)
    return out


def images(
    seed: int,
    path: str = "",
    label: str | None = None,
    split: str = "train",
    val_split: str | None = None,
    val_path: str | None = None,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    image_size: int = 32,
    channels: int = 3,
    augment: bool = True,
    flip: bool = True,
    normalize: str = "imagenet",
    max_classes: int = 1000,
    num_classes: int | None = None,
) -> DataBundle:
    """Images with a label from a `datasets` source or a file with an image column."""
    if not path:
        raise ValueError("path is required: a datasets id, a local image dataset folder, or a file with an image column")
    if channels not in (1, 3):
        raise ValueError("channels must be 1 or 3")
    if not 8 <= image_size <= 512:
        raise ValueError("image_size must be between 8 and 512")
    plan, train, val, source, unlabelled = load_tables(path, label, val_path, split, val_split, val_fraction,
                                                       split_seed, None, None, 50, max_classes, images=True)
    if plan.label_kind != "classes":
        raise ConfigError(f"data: label column {plan.label!r} holds numbers, not classes: the image presets classify")
    classes = plan.classes
    if num_classes is not None and num_classes != len(classes):
        raise ConfigError(f"data.args.num_classes = {num_classes}, but label {plan.label!r} has {len(classes)} "
                          f"classes ({', '.join(classes[:10])})")
    index = {name: i for i, name in enumerate(classes)}
    column = plan.images[0]

    def tensors(rows, where: str):
        names = [str(v) for v in rows[plan.label].to_pylist()]
        unknown = sorted({n for n in names if n not in index})
        if unknown:
            raise ConfigError(f"data: {where} has label {unknown[0]!r}, which the training rows never show")
        x = decode_column(rows[column].to_pylist(), image_size, channels, where)
        return x, torch.tensor([index[n] for n in names], dtype=torch.long)

    train_x, train_y = tensors(train, "the training rows")
    val_x, val_y = tensors(val, "the validation rows")
    if unlabelled:
        notice(f"data: dropped {unlabelled} image(s) with no {plan.label!r}")
    counts = class_counts(plan, train)
    notice(f"data: {path}: {len(train_y)} train / {len(val_y)} val images at {image_size}x{image_size} ({source}); "
           f"{plan.label_said}: {len(classes)} classes ({', '.join(f'{c}: {n}' for c, n in list(counts.items())[:8])})")
    return _image_bundle(train_x, train_y, val_x, val_y, classes, None, augment, flip, normalize,
                         {"source": f"images:{path}"})
