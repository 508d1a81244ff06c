"""Pathological models and datasets, built on purpose for the diagnostics tests.

Used only as custom targets (`model.target = ".../support/zoo.py:fn"`), never imported by tests:
each builder returns a model (`fn(**args) -> nn.Module`) or data (`fn(**args) -> (train, val)`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import TensorDataset

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}


# -- models -------------------------------------------------------------------------------------------
class MLP(nn.Module):
    """body.0 Linear, body.1 activation, body.2 Linear, ... then head. Init knobs make it sick on purpose."""

    def __init__(self, inputs=2, outputs=4, hidden=32, depth=2, activation="relu", weight_std=None, bias=None,
                 head_scale=1.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = inputs
        for _ in range(depth):
            linear = nn.Linear(width, hidden)
            if weight_std is not None:
                nn.init.normal_(linear.weight, std=weight_std / math.sqrt(width))
            if bias is not None:
                nn.init.constant_(linear.bias, bias)
            layers += [linear, ACTIVATIONS[activation]()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, outputs)
        with torch.no_grad():
            self.head.weight.mul_(head_scale)
            self.head.bias.mul_(head_scale)

    def forward(self, x):
        return self.head(self.body(x))


def mlp(**args):
    return MLP(**args)


class NaNAfter(nn.Module):
    """A custom layer that starts emitting NaN after `after` training calls."""

    def __init__(self, after: int):
        super().__init__()
        self.after = after
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
        if self.calls > self.after:
            return x * float("nan")
        return x


class WithLayer(nn.Module):
    """fc1 -> act -> <custom layer named `bad`> -> fc2."""

    def __init__(self, bad: nn.Module, inputs=2, outputs=4, hidden=32):
        super().__init__()
        self.fc1 = nn.Linear(inputs, hidden)
        self.act = nn.ReLU()
        self.bad = bad
        self.fc2 = nn.Linear(hidden, outputs)

    def forward(self, x):
        return self.fc2(self.bad(self.act(self.fc1(x))))


def nan_after(after: int = 30, **args):
    return WithLayer(NaNAfter(after), **args)


class Exp(nn.Module):
    """exp of a learned projection: overflows to inf when the projection's weights are huge (a bad init)."""

    def __init__(self, width: int, scale: float):
        super().__init__()
        self.proj = nn.Linear(width, width)
        with torch.no_grad():
            self.proj.weight.mul_(scale)

    def forward(self, x):
        return torch.exp(self.proj(x))


def exp_overflow(scale: float = 1e4, **args):
    return WithLayer(Exp(args.get("hidden", 32), scale), **args)


class WhereSqrt(nn.Module):
    """where(x > 0, sqrt(x), 0): a finite forward, but the masked-out sqrt of negatives sends NaN backward."""

    def forward(self, x):
        return torch.where(x > 0, torch.sqrt(x), torch.zeros_like(x))


class WhereSqrtNet(nn.Module):
    """fc1 -> `bad` (WhereSqrt) -> fc2, without a ReLU before it (so the inputs go negative)."""

    def __init__(self, inputs=2, outputs=4, hidden=32):
        super().__init__()
        self.fc1 = nn.Linear(inputs, hidden)
        self.bad = WhereSqrt()
        self.fc2 = nn.Linear(hidden, outputs)

    def forward(self, x):
        return self.fc2(self.bad(self.fc1(x)))


def where_sqrt(**args):
    return WhereSqrtNet(**args)


class FunctionalLog(nn.Module):
    """Functional code between two modules makes NaN: log of a signed value, inside this module's forward."""

    def __init__(self, inputs=2, outputs=4, hidden=32):
        super().__init__()
        self.fc1 = nn.Linear(inputs, hidden)
        self.fc2 = nn.Linear(hidden, outputs)

    def forward(self, x):
        return self.fc2(torch.log(self.fc1(x)))


class Wrapped(nn.Module):
    """`block` inside a plain container, so the culprit has a dotted name."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block(x)


def functional_log(**args):
    return Wrapped(FunctionalLog(**args))


class Flipper(nn.Module):
    """Negates its input for `period` training calls out of every 2 x `period`: the task keeps changing."""

    def __init__(self, period: int):
        super().__init__()
        self.period, self.calls = period, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
        return -x if (self.calls // self.period) % 2 else x


def flipping_input(period: int = 40, **args):
    """Flipper -> MLP: every `period` steps the inputs' sign flips, the loss jumps, then it relearns."""
    return nn.Sequential(Flipper(period), MLP(**args))


class _Amplify(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor, None


class GradientBurst(nn.Module):
    """Identity forward; every `every`-th training call (every call after it, if `stay`) its backward
    multiplies the gradient by `factor` (1e39 overflows float32 to inf)."""

    def __init__(self, every: int, factor: float, stay: bool):
        super().__init__()
        self.every, self.factor, self.stay, self.calls = every, factor, stay, 0

    def forward(self, x):
        if not self.training:
            return x
        self.calls += 1
        hit = self.calls >= self.every if self.stay else self.calls % self.every == 0
        return _Amplify.apply(x, self.factor if hit else 1.0)


def gradient_burst(every: int = 40, factor: float = 1e4, stay: bool = False, **args):
    return WithLayer(GradientBurst(every, factor, stay), **args)


class NegativeOnly(nn.Module):
    """A custom layer that (wrongly) returns -|x|: everything after it in a ReLU is dead."""

    def forward(self, x):
        return -x.abs()


class DeadAfterCustom(nn.Module):
    def __init__(self, inputs=2, outputs=4, hidden=32):
        super().__init__()
        self.fc1 = nn.Linear(inputs, hidden)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, hidden)
        self.neg = NegativeOnly()
        self.act2 = nn.ReLU()
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x):
        return self.head(self.act2(self.neg(self.fc2(self.act1(self.fc1(x))))))


def dead_after_custom(**args):
    return DeadAfterCustom(**args)


class _WrongSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x  # wrong on purpose: d(x^2)/dx is 2x


class WrongSquare(nn.Module):
    def forward(self, x):
        return _WrongSquare.apply(x)


def wrong_backward(**args):
    return WithLayer(WrongSquare(), **args)


class Unused(nn.Module):
    """A model with a layer that never takes part in the forward pass."""

    def __init__(self, inputs=2, outputs=4, hidden=32):
        super().__init__()
        self.fc1 = nn.Linear(inputs, hidden)
        self.spare = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, outputs)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def unused_layer(**args):
    return Unused(**args)


def linear(inputs=2, outputs=2):
    return nn.Linear(inputs, outputs)


# -- data -------------------------------------------------------------------------------------------
def _quadrants(n, generator):
    x = torch.randn(n, 2, generator=generator)
    return x, (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()


def quadrants_with_nan(train_size=2048, val_size=512, every=97, seed=0):
    """Quadrants where every `every`-th training sample has a NaN feature."""
    g = torch.Generator().manual_seed(seed)
    x, y = _quadrants(train_size, g)
    x[::every, 1] = float("nan")
    vx, vy = _quadrants(val_size, g)
    return TensorDataset(x, y), TensorDataset(vx, vy)


def random_labels(train_size=2048, val_size=512, classes=4, seed=0):
    """Inputs and labels drawn independently: there is nothing to learn."""
    g = torch.Generator().manual_seed(seed)
    make = lambda n: TensorDataset(torch.randn(n, 2, generator=g), torch.randint(0, classes, (n,), generator=g))
    return make(train_size), make(val_size)


def xor(train_size=2048, val_size=512, seed=0):
    """label = [x0 * x1 > 0]: not linearly separable."""
    g = torch.Generator().manual_seed(seed)

    def make(n):
        x = torch.randn(n, 2, generator=g)
        return TensorDataset(x, (x[:, 0] * x[:, 1] > 0).long())

    return make(train_size), make(val_size)


def outlier_batches(train_size=4096, val_size=512, fraction=0.02, scale=300.0, seed=0):
    """Quadrants where a small fraction of training samples have inputs blown up by `scale` (bad samples)."""
    g = torch.Generator().manual_seed(seed)
    x, y = _quadrants(train_size, g)
    bad = torch.rand(train_size, generator=g) < fraction
    x[bad] *= scale
    vx, vy = _quadrants(val_size, g)
    return TensorDataset(x, y), TensorDataset(vx, vy)


def shifted_regression(train_size=2048, val_size=512, offset=100.0, seed=0, nan_every=0):
    """y = x0 + x1 + offset: targets far from 0 (an unnormalised target); optionally NaN targets."""
    g = torch.Generator().manual_seed(seed)

    def make(n, nan_every):
        x = torch.randn(n, 2, generator=g)
        y = x.sum(dim=1) + offset
        if nan_every:
            y[::nan_every] = float("nan")
        return TensorDataset(x, y)

    return make(train_size, nan_every), make(val_size, 0)


class Amplified(nn.Module):
    """first -> ReLU -> `boost` (multiplies every gradient flowing back by `factor`) -> rest -> head."""

    def __init__(self, inputs=2, outputs=4, hidden=32, depth=4, factor=1e4):
        super().__init__()
        self.first = nn.Linear(inputs, hidden)
        self.act = nn.ReLU()
        self.boost = GradientBurst(1, factor, True)
        self.rest = nn.Sequential(*[m for _ in range(depth - 1) for m in (nn.Linear(hidden, hidden), nn.ReLU())])
        self.head = nn.Linear(hidden, outputs)

    def forward(self, x):
        return self.head(self.rest(self.boost(self.act(self.first(x)))))


def amplified(**args):
    return Amplified(**args)


def overlapping_blobs(train_size=4096, val_size=1024, classes=4, spread=1.0, features=2, seed=0):
    """Gaussian classes whose clouds overlap (centres on a circle of radius 2, std `spread`): even the best
    model gets some wrong, so the loss bottoms out early and the val loss then only moves within noise."""
    g = torch.Generator().manual_seed(seed)
    angles = torch.arange(classes) * (2 * math.pi / classes)
    centres = torch.zeros(classes, features)
    centres[:, 0], centres[:, 1] = 2 * torch.cos(angles), 2 * torch.sin(angles)

    def make(n):
        y = torch.randint(0, classes, (n,), generator=g)
        return TensorDataset(centres[y] + spread * torch.randn(n, features, generator=g), y)

    return make(train_size), make(val_size)


class ProbabilityOutput(nn.Module):
    """fc1 -> ReLU -> fc2 -> `probs` (Softmax, or Sigmoid for one output): probabilities handed to a loss that
    applies softmax/sigmoid itself. `functional` does the softmax in forward code instead of a module;
    `final=False` is the healthy twin (logits out, the same weights)."""

    def __init__(self, inputs=2, outputs=4, hidden=32, functional=False, final=True):
        super().__init__()
        self.fc1 = nn.Linear(inputs, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, outputs)
        self.functional, self.final = functional, final
        self.probs = nn.Sigmoid() if outputs == 1 else nn.Softmax(dim=-1)

    def forward(self, x):
        logits = self.fc2(self.act(self.fc1(x.flatten(1))))
        if not self.final:
            return logits
        return torch.softmax(logits, dim=-1) if self.functional else self.probs(logits)


def probability_output(**args):
    return ProbabilityOutput(**args)


def scaled_quadrants(train_size=2048, val_size=512, scales=(30000.0, 40.0), offsets=(50000.0, 40.0),
                     standardise=False, seed=0):
    """Quadrants with each feature in its own units (say income and age): x_j = offset_j + scale_j * z_j.
    `standardise` applies the training set's mean and std, as a careful pipeline (or `--data`) would."""
    g = torch.Generator().manual_seed(seed)
    z, y = _quadrants(train_size, g)
    vz, vy = _quadrants(val_size, g)
    scale, offset = torch.tensor(scales), torch.tensor(offsets)
    x, vx = offset + scale * z, offset + scale * vz
    if standardise:
        mean, std = x.mean(0), x.std(0)
        x, vx = (x - mean) / std, (vx - mean) / std
    return TensorDataset(x, y), TensorDataset(vx, vy)


def raw_pixels(train_size=512, val_size=128, size=12, scale=255.0, seed=0):
    """Images as stored (0..255 bytes as floats) with 4 classes by which quadrant holds a bright blob;
    `scale` = 1 gives them in [0, 1]."""
    g = torch.Generator().manual_seed(seed)

    def make(n):
        y = torch.randint(0, 4, (n,), generator=g)
        x = torch.rand(n, 3, size, size, generator=g) * 0.3
        half = size // 2
        for i, label in enumerate(y.tolist()):
            r, c = divmod(label, 2)
            x[i, :, r * half:(r + 1) * half, c * half:(c + 1) * half] += 0.6
        return TensorDataset(x * scale, y)

    return make(train_size), make(val_size)


class SmallConv(nn.Module):
    """conv (3 -> 8) -> ReLU -> global average pool -> head."""

    def __init__(self, outputs=4):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(8, outputs)

    def forward(self, x):
        return self.head(self.act(self.conv(x)).mean(dim=(2, 3)))


def small_conv(**args):
    return SmallConv(**args)


def oversampled(train_size=1024, val_size=256, copies=4, split_after=True, shared=0, seed=0):
    """Quadrants oversampled `copies` times (each sample repeated exactly), then split into train and val
    after the oversampling (`split_after`, the bug: val holds copies of training samples) or before it.
    `shared` validation samples are also put in the training set (a few natural copies)."""
    g = torch.Generator().manual_seed(seed)
    x, y = _quadrants(train_size + val_size, g)
    if shared:
        x[:shared], y[:shared] = x[train_size:train_size + shared], y[train_size:train_size + shared]
    if split_after:
        x, y = x.repeat(copies, 1), y.repeat(copies)
        order = torch.randperm(len(x), generator=g)
        x, y = x[order], y[order]
        cut = len(x) - val_size
        return TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])
    train = TensorDataset(x[:train_size].repeat(copies, 1), y[:train_size].repeat(copies))
    return train, TensorDataset(x[train_size:], y[train_size:])


def shifted_val_labels(train_size=2048, val_size=512, shift=1, seed=0):
    """Quadrants whose validation labels were encoded differently from the training ones (label + shift,
    mod 4): the model learns the training set and scores below chance on validation."""
    g = torch.Generator().manual_seed(seed)
    x, y = _quadrants(train_size, g)
    vx, vy = _quadrants(val_size, g)
    return TensorDataset(x, y), TensorDataset(vx, (vy + shift) % 4)


def rare_class(train_size=2048, val_size=512, threshold=1.2816, seed=0):
    """Two classes, 90% / 10%: label 1 when x0 > threshold (the top decile of N(0, 1)). A model first learns
    the prior (always class 0: accuracy = the majority rate, chance) while its loss falls, then the boundary."""
    g = torch.Generator().manual_seed(seed)

    def make(n):
        x = torch.randn(n, 2, generator=g)
        return TensorDataset(x, (x[:, 0] > threshold).long())

    return make(train_size), make(val_size)


def raw_csv(path, label, val_fraction=0.2, seed=0):
    """A CSV's numeric columns as they are in the file (no standardising; text columns left out), the label's
    values as classes: what a hand-written loader feeds the model when it skips the scaling step."""
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    numeric = [c for c in rows[0] if c != label and _is_number(rows[0][c])]
    classes = sorted({row[label] for row in rows})
    x = torch.tensor([[float(row[c]) for c in numeric] for row in rows])
    y = torch.tensor([classes.index(row[label]) for row in rows])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    cut = int(len(rows) * (1 - val_fraction))
    return TensorDataset(x[order[:cut]], y[order[:cut]]), TensorDataset(x[order[cut:]], y[order[cut:]])


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True
