"""Procedurally drawn shapes: small RGB images of circles, rings, squares, triangles, crosses and bars.

Each image has a random foreground and background colour, position, size, rotation and pixel
noise, so a model has to learn shape, not colour or place. Drawn once as uint8 (deterministic in
the seed); the augmentations (workbench.data.images) run per batch on the training set only.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from workbench.data.base import DataBundle, DataInfo
from workbench.data.batched import BatchedDataset, passthrough
from workbench.data.images import ImageTransform

SHAPES = ("circle", "ring", "square", "triangle", "cross", "bar")


def _signed_distance(shape: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Positive inside the shape, in units of its radius (u, v: rotated, scaled coordinates)."""
    if shape == "circle":
        return 1 - torch.sqrt(u * u + v * v)
    if shape == "ring":
        return 0.22 - (torch.sqrt(u * u + v * v) - 0.72).abs()
    if shape == "square":
        return 0.75 - torch.maximum(u.abs(), v.abs())
    if shape == "triangle":  # equilateral, circumradius 1: inside all three edges
        edges = [(math.cos(a), math.sin(a)) for a in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3,
                                                       math.pi / 2 + 4 * math.pi / 3)]
        return 0.5 - torch.stack([u * cx + v * cy for cx, cy in edges]).amax(0)
    if shape == "cross":
        arm_h = torch.minimum(0.25 - v.abs(), 1 - u.abs())
        arm_v = torch.minimum(0.25 - u.abs(), 1 - v.abs())
        return torch.maximum(arm_h, arm_v)
    if shape == "bar":
        return torch.minimum(0.22 - v.abs(), 1 - u.abs())
    raise ValueError(f"unknown shape {shape!r}")


def draw_shapes(n: int, size: int, classes: tuple[str, ...], noise: float, generator: torch.Generator):
    """n images (uint8, (n, 3, size, size)) and their labels."""
    labels = torch.randint(0, len(classes), (n,), generator=generator)
    centre = (torch.rand(n, 2, generator=generator) - 0.5) * 0.7
    radius = 0.35 + 0.3 * torch.rand(n, generator=generator)
    angle = 2 * math.pi * torch.rand(n, generator=generator)
    # a light shape on a dark background, both of random hue: contrast carries the shape, colour doesn't
    fg = 0.55 + 0.45 * torch.rand(n, 3, generator=generator)
    bg = 0.45 * torch.rand(n, 3, generator=generator)
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    dx = xx.unsqueeze(0) - centre[:, 0].view(n, 1, 1)
    dy = yy.unsqueeze(0) - centre[:, 1].view(n, 1, 1)
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    r = radius.view(n, 1, 1)
    u, v = (dx * cos + dy * sin) / r, (-dx * sin + dy * cos) / r
    inside = torch.zeros(n, size, size)
    for index, shape in enumerate(classes):
        chosen = labels == index
        if chosen.any():
            inside[chosen] = _signed_distance(shape, u[chosen], v[chosen])
    # signed distance in pixels -> soft (anti-aliased) edge
    alpha = torch.sigmoid(inside * r * size).unsqueeze(1)
    images = bg.view(n, 3, 1, 1) * (1 - alpha) + fg.view(n, 3, 1, 1) * alpha
    images = images + noise * torch.randn(images.shape, generator=generator)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels


def shapes(
    seed: int,
    num_classes: int = 6,
    image_size: int = 32,
    train_size: int = 8192,
    val_size: int = 2048,
    noise: float = 0.05,
    augment: bool = True,
    crop_padding: int = 4,
    jitter: float = 0.2,
    rotation: float = 10.0,
) -> DataBundle:
    """32x32 RGB shapes, `num_classes` of circle/ring/square/triangle/cross/bar, ImageNet-normalised.

    image_size > 32 upscales every batch (bilinear), e.g. 64 for the ResNet transfer preset.
    augment: RandomCrop(32, padding=crop_padding), horizontal flip, ColorJitter(jitter x3), RandomRotation.
    """
    if not 2 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes must be between 2 and {len(SHAPES)}")
    if not 16 <= image_size <= 512:
        raise ValueError("image_size must be between 16 and 512")
    if train_size < 1 or val_size < 1:
        raise ValueError("train_size and val_size must be positive")
    if noise < 0 or jitter < 0 or rotation < 0 or crop_padding < 0:
        raise ValueError("noise, jitter, rotation and crop_padding must be >= 0")
    generator = torch.Generator().manual_seed(seed)
    classes = SHAPES[:num_classes]

    def make(n: int, train: bool) -> Dataset:
        images, labels = [], []
        for start in range(0, n, 2048):  # bounded memory while drawing
            x, y = draw_shapes(min(2048, n - start), 32, classes, noise, generator)
            images.append(x)
            labels.append(y)
        transform = ImageTransform(augment and train, image_size, crop_padding=crop_padding, jitter=jitter,
                                   rotation=rotation)
        return BatchedDataset(torch.cat(images), torch.cat(labels), transform)

    info = DataInfo(task="classification", num_classes=num_classes, input_shape=(3, image_size, image_size),
                    collate=passthrough, extra={"classes": list(classes)})
    return DataBundle(make(train_size, True), make(val_size, False), info)
