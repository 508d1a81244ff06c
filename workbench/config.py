"""The preset schema: one pydantic model per TOML section, validated with unknown keys forbidden.

This module is the single source of truth for what a preset may contain. The CLI validates with it,
`--set` overrides are typed by it, and the TUI generates its form from it. Every field carries a
docstring (exposed as its description) saying what it does.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Mapping, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench.errors import ConfigError
from workbench.registry import DATASETS, MODELS

# Each choice list is written once, as the field's type; the tuples are read from it.
Task = Literal["classification", "binary", "regression", "forecasting", "language_modeling", "seq2seq"]
Optimizer = Literal["sgd", "adam", "adamw", "rmsprop", "muon"]
Schedule = Literal["constant", "step", "cosine", "warmup_cosine", "onecycle", "linear"]
Loss = Literal["cross_entropy", "bce_with_logits", "mse", "l1", "nll", "model"]
Precision = Literal["fp32", "bf16", "fp16"]
Device = Literal["auto", "cpu", "cuda", "mps"]
TASKS: tuple[str, ...] = get_args(Task)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
SCHEDULES: tuple[str, ...] = get_args(Schedule)
LOSSES: tuple[str, ...] = get_args(Loss)
PRECISIONS: tuple[str, ...] = get_args(Precision)
DEVICES: tuple[str, ...] = get_args(Device)


class Section(BaseModel):
    """Base for every section: unknown keys are errors, assignments are re-validated."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


class BuilderSection(Section):
    """A section that names its builder: a built-in `kind` from a registry, or "custom" with a `target`."""

    KINDS: ClassVar[Mapping[str, str]]  # the registry of built-in kinds
    WHAT: ClassVar[str]  # "model" or "data", for messages

    @field_validator("kind", check_fields=False)
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value != "custom" and value not in cls.KINDS:
            raise ValueError(f"unknown {cls.WHAT} kind {value!r} (known: {', '.join(sorted(cls.KINDS))}, custom)")
        return value

    @field_validator("target", check_fields=False)
    @classmethod
    def _target_names_a_function(cls, value: str | None) -> str | None:
        if value is not None and (":" not in value or not value.split(":", 1)[1].strip()):
            raise ValueError("must look like 'file.py:function'")
        return value

    @model_validator(mode="after")
    def _custom_needs_target(self):
        if self.kind == "custom" and not self.target:
            raise ValueError('kind = "custom" needs target = "file.py:function"')
        return self


class ModelConfig(BuilderSection):
    KINDS: ClassVar[Mapping[str, str]] = MODELS
    WHAT: ClassVar[str] = "model"

    kind: str = "mlp"
    """Which model to build: a built-in kind, or "custom" with a target."""
    target: str | None = None
    """For kind = "custom": "file.py:function" returning a torch.nn.Module (relative to the preset file)."""
    pretrained: str | None = None
    """Hugging Face hub id or local directory to load weights from (HF kinds); "imagenet" for resnet."""
    trust_remote_code: bool = False
    """Let Hugging Face run model code shipped with the weights. Off unless you trust the source."""
    args: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the model builder (e.g. hidden = 128, dropout = 0.1)."""


class DataConfig(BuilderSection):
    KINDS: ClassVar[Mapping[str, str]] = DATASETS
    WHAT: ClassVar[str] = "data"

    kind: str = "quadrants"
    """Which data to train on: a built-in kind, or "custom" with a target."""
    target: str | None = None
    """For kind = "custom": "file.py:function" returning (train_dataset, val_dataset)."""
    args: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the data builder (sizes, noise, paths, ...)."""


class OptimConfig(Section):
    name: Optimizer = "adamw"
    """Optimizer: sgd (with momentum/nesterov), adam, adamw, rmsprop, or muon (2-D weights; needs torch.optim.Muon)."""
    lr: float = Field(default=3e-4, gt=0, le=100)
    """Base learning rate."""
    weight_decay: float = Field(default=0.0, ge=0, le=10)
    """Weight decay (decoupled for adamw)."""
    momentum: float = Field(default=0.9, ge=0, lt=1)
    """Momentum for sgd and rmsprop."""
    nesterov: bool = False
    """Nesterov momentum (sgd)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam/AdamW betas."""
    eps: float = Field(default=1e-8, gt=0, le=1)
    """Numerical epsilon for adaptive optimizers."""
    group_lr: dict[str, float] = Field(default_factory=dict)
    """Per-group learning rates by module name prefix, e.g. {"layer4" = 1e-4, "fc" = 1e-3}; the rest uses lr."""

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in value):
            raise ValueError("each beta must be in [0, 1)")
        return value

    @field_validator("group_lr")
    @classmethod
    def _group_lrs_positive(cls, value: dict[str, float]) -> dict[str, float]:
        for prefix, lr in value.items():
            if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
                raise ValueError(f"learning rate for {prefix!r} must be a positive number")
        return value


class ScheduleConfig(Section):
    name: Schedule = "constant"
    """Learning-rate schedule: constant, step, cosine, warmup_cosine (linear warmup then cosine), onecycle, linear (warmup then linear decay)."""
    warmup_steps: int = Field(default=0, ge=0, le=10_000_000)
    """Linear warmup steps (warmup_cosine, linear, constant)."""
    step_size: int = Field(default=1000, ge=1, le=10_000_000)
    """StepLR: decay every this many steps."""
    gamma: float = Field(default=0.1, gt=0, le=1)
    """StepLR: multiply the LR by this at each decay."""
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)
    """Cosine schedules: final LR as a fraction of the base LR."""
    pct_start: float = Field(default=0.3, gt=0, lt=1)
    """OneCycle: fraction of the run spent increasing the LR."""


class TrainConfig(Section):
    loss: Loss = "cross_entropy"
    """Loss function; "model" uses the loss the model computes itself (Hugging Face models)."""
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    """Label smoothing for cross_entropy."""
    batch_size: int = Field(default=64, ge=1, le=1_000_000)
    """Samples per micro-batch."""
    max_steps: int = Field(default=1000, ge=1, le=1_000_000_000)
    """Optimizer steps to train for."""
    eval_every: int = Field(default=100, ge=0, le=1_000_000_000)
    """Evaluate on the validation set every N steps (0 = only at the end)."""
    eval_batches: int = Field(default=20, ge=1, le=1_000_000)
    """Validation batches per evaluation."""
    checkpoint_every: int = Field(default=0, ge=0, le=1_000_000_000)
    """Save a full checkpoint every N steps (0 = only at the end and on request)."""
    keep_checkpoints: int = Field(default=3, ge=1, le=1000)
    """Periodic checkpoints to keep (the best one is kept as well)."""
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    """Seed for python, numpy and torch, and the data order."""
    grad_clip: float = Field(default=0.0, ge=0, le=1e6)
    """Clip the global gradient norm to this value (0 = off)."""
    grad_accum: int = Field(default=1, ge=1, le=10_000)
    """Micro-batches accumulated per optimizer step."""
    precision: Precision = "fp32"
    """Autocast precision on CUDA (fp16 uses a GradScaler); CPU runs in fp32 unless bf16 is asked for."""
    device: Device = "auto"
    """Where to train: auto picks cuda, then mps, then cpu."""
    ema_decay: float = Field(default=0.0, ge=0, lt=1)
    """Keep an exponential moving average of the weights with this decay (0 = off); eval uses it."""
    early_stop_patience: int = Field(default=0, ge=0, le=1_000_000)
    """Stop after this many evaluations without a better val loss (0 = off)."""
    early_stop_min_delta: float = Field(default=0.0, ge=0, le=1e6)
    """A val loss must beat the best by more than this to count as an improvement."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    log_every: int = Field(default=0, ge=0, le=100_000)
    """Read metrics back and publish them every N steps; 0 = by wall time, about 5 times a second."""
    probe_every: int = Field(default=200, ge=0, le=1_000_000_000)
    """Per-layer gradient norms, update ratios and activation probes every N steps (0 = off); left at
    the default, probes also stay within 2% of the wall time."""
    num_workers: int = Field(default=0, ge=0, le=64)
    """DataLoader worker processes (0 = load in the trainer thread)."""
    threads: int = Field(default=0, ge=0, le=1024)
    """Intra-op CPU threads for torch; 0 = chosen for the machine (one for a small CPU model, else every
    core less one for a live dashboard)."""


class Preset(BaseModel):
    """A complete, validated training recipe."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)

    name: str = Field(default="untitled", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """Preset name (letters, digits, '.', '_' and '-')."""
    description: str = Field(default="", max_length=500)
    """One line: what it is and what it teaches."""
    task: Task = "classification"
    """What the model learns; decides the eval metrics (accuracy, perplexity, MAE...)."""
    watch: str = Field(default="", max_length=500)
    """What this preset is good for watching on the dashboard."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


SECTIONS: dict[str, type[Section]] = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": TrainConfig,
}


def format_validation_error(error: ValidationError, source: str = "") -> list[str]:
    """One line per problem: '<source>: <dotted.key>: <why>'."""
    lines = []
    prefix = f"{source}: " if source else ""
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(preset)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        lines.append(f"{prefix}{key}: {message}")
    return lines


def _reject_non_finite(data: Any, path: str = "") -> list[str]:
    """NaN and inf are never meaningful hyperparameters; TOML allows them, we don't."""
    problems = []
    if isinstance(data, float) and not math.isfinite(data):
        problems.append(f"{path or '(preset)'}: {data!r} is not a finite number")
    elif isinstance(data, dict):
        for key, value in data.items():
            problems += _reject_non_finite(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            problems += _reject_non_finite(value, f"{path}[{index}]")
    return problems


def validate_preset(data: dict[str, Any], source: str = "") -> Preset:
    """Validate raw preset data, raising ConfigError with one line per problem."""
    problems = _reject_non_finite(data)
    if problems:
        raise ConfigError([f"{source}: {p}" if source else p for p in problems])
    try:
        return Preset.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None
    except RecursionError:
        raise ConfigError(f"{source or 'preset'}: nested too deeply") from None


def field_description(section: str, key: str) -> str:
    """The documented meaning of a preset field (used by the TUI form and error messages)."""
    model = SECTIONS[section] if section in SECTIONS else Preset
    field = model.model_fields.get(key)
    return (field.description or "") if field else ""
