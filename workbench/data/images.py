"""Batch-wise image transforms: the augmentations (RandomCrop, flip, ColorJitter, RandomRotation)
applied per sample but computed for a whole batch at once, plus normalisation and resizing.

Random draws come from torch's global generator on the trainer thread, so a resumed run (which
restores that generator) sees the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """RandomCrop(size, padding): zero-pad, then cut a same-size window at a random offset per image."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b, 1))
    ox = torch.randint(0, 2 * padding + 1, (b, 1))
    rows = (oy + torch.arange(h)).unsqueeze(2)  # (b, h, 1)
    cols = (ox + torch.arange(w)).unsqueeze(1)  # (b, 1, w)
    batch = torch.arange(b).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(x.shape[0]) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def color_jitter(x: torch.Tensor, brightness: float, contrast: float, saturation: float) -> torch.Tensor:
    """ColorJitter on images in [0, 1]: per-image factors drawn from [1 - s, 1 + s]."""
    b = x.shape[0]

    def factor(strength: float) -> torch.Tensor:
        return (1 + strength * (2 * torch.rand(b, 1, 1, 1) - 1)).to(x.dtype)

    if brightness:
        x = (x * factor(brightness)).clamp(0, 1)
    if x.shape[1] == 3:
        gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    else:
        gray = x
    if contrast:
        mean = gray.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * factor(contrast) + mean).clamp(0, 1)
    if saturation and x.shape[1] == 3:
        gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
        x = ((x - gray) * factor(saturation) + gray).clamp(0, 1)
    return x


def random_rotation(x: torch.Tensor, degrees: float) -> torch.Tensor:
    if degrees <= 0:
        return x
    angle = (2 * torch.rand(x.shape[0]) - 1) * math.radians(degrees)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


class ImageTransform:
    """uint8 or float images (B, C, H, W) -> augmented (training), resized, normalised float images."""

    def __init__(self, augment: bool, image_size: int | None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 crop_padding: int = 4, jitter: float = 0.2, rotation: float = 10.0, flip: bool = True):
        self.augment, self.image_size = augment, image_size
        self.mean, self.std = mean, std
        self.crop_padding, self.jitter, self.rotation, self.flip = crop_padding, jitter, rotation, flip

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        if self.augment:
            x = random_crop(x, self.crop_padding)
            if self.flip:
                x = random_flip(x)
            if self.jitter:
                x = color_jitter(x, self.jitter, self.jitter, self.jitter)
            x = random_rotation(x, self.rotation)
        if self.image_size and x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=self.image_size < x.shape[-1])
        channels = x.shape[1]
        mean = torch.tensor(self.mean[:channels] if channels <= 3 else self.mean[:1] * channels).view(1, -1, 1, 1)
        std = torch.tensor(self.std[:channels] if channels <= 3 else self.std[:1] * channels).view(1, -1, 1, 1)
        return (x - mean) / std
