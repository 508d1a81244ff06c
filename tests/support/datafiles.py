"""Small learnable data files the `--data` tests write for themselves (no network): tables as CSV, TSV,
Parquet, JSON and JSONL, images as a folder per class or as image bytes in Parquet, labelled texts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

SPECIES = ("setosa", "versicolor", "virginica")


def table_rows(n: int = 600, seed: int = 0, kind: str = "classes") -> list[dict]:
    """Features on wildly different scales (x1 ~ 500 +- 100, x2 ~ 0 +- 0.01) and a category; the label
    is a clean function of them: three classes, two classes, or a number (kind = classes|binary|regression)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        z1, z2 = rng.normal(), rng.normal()
        color = str(rng.choice(["red", "green", "blue"]))
        row = {"x1": round(500 + 100 * z1, 4), "x2": round(0.01 * z2, 6), "color": color}
        if kind == "classes":
            row["species"] = SPECIES[0] if z1 < -0.4 else SPECIES[1] if z2 < 0 else SPECIES[2]
        elif kind == "binary":
            row["target"] = int(z1 + z2 + (0.8 if color == "red" else 0.0) > 0)
        else:
            row["price"] = round(5000 + 1000 * (1.5 * z1 - z2 + (0.5 if color == "blue" else 0.0))
                                 + 20 * rng.normal(), 2)
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_json(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps(rows))
    return path


def draw(cls: int, rng, size: int = 16):
    """Class 0: the left half is bright; 1: the top half; 2: a centred square. Noise everywhere."""
    from PIL import Image

    pixels = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    half = size // 2
    if cls == 0:
        pixels[:, :half] += 150
    elif cls == 1:
        pixels[:half, :] += 150
    else:
        pixels[size // 4: 3 * size // 4, size // 4: 3 * size // 4] += 150
    return Image.fromarray(pixels, "RGB")


def write_image_folder(root: Path, per_class: int = 40, seed: int = 0, names=("left", "top", "centre")) -> Path:
    rng = np.random.default_rng(seed)
    for cls, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(cls, rng).save(folder / f"{name}_{i}.png")
    return root


def write_image_parquet(path: Path, per_class: int = 40, seed: int = 0, names=("left", "top", "centre")) -> Path:
    """Images as PNG bytes in a {bytes, path} column, as `datasets` writes an Image feature to Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for cls, name in enumerate(names):
        for i in range(per_class):
            buffer = io.BytesIO()
            draw(cls, rng).save(buffer, format="PNG")
            images.append({"bytes": buffer.getvalue(), "path": f"{name}_{i}.png"})
            labels.append(name)
    pq.write_table(pa.table({"image": images, "label": labels}), path)
    return path


TOPICS = {
    "animals": ["cat", "dog", "horse", "sheep", "goat", "mouse"],
    "food": ["bread", "cheese", "apple", "soup", "rice", "pasta"],
    "vehicles": ["car", "truck", "bus", "train", "bicycle", "tram"],
}
FILLER = ["the", "a", "i", "saw", "liked", "near", "old", "new", "big", "small", "today", "there", "very", "one"]


def write_texts_csv(path: Path, n: int = 450, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    topics = list(TOPICS)
    for i in range(n):
        topic = topics[i % 3]
        words = list(rng.choice(FILLER, 6)) + list(rng.choice(TOPICS[topic], 2))
        rng.shuffle(words)
        rows.append({"id": i, "text": " ".join(words), "topic": topic})
    return write_csv(path, rows)
