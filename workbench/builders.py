"""Turn a validated preset's model and data sections into callables, checked before anything runs.

`check_preset` imports the builders (built-in or a user's `file.py:function`) and checks the preset's
args against their signatures, so a typo in `model.args` is a one-line error (exit 2) and not a
traceback halfway through set-up. Note: loading a custom target runs that Python file.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

from workbench.config import DataConfig, ModelConfig, Preset
from workbench.errors import ConfigError
from workbench.registry import DATASETS, MODELS, resolve


def load_target(target: str, key: str) -> Callable[..., Any]:
    """Import `file.py:function` and return the function."""
    file_part, _, fn_name = target.rpartition(":")
    path = Path(file_part).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key}: file {str(path)!r} not found")
    module_name = f"workbench_custom_{abs(hash(str(path.resolve())))}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{key}: {str(path)!r} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # a user's file: report, don't crash
            raise ConfigError(f"{key}: importing {str(path)!r} failed: {type(error).__name__}: {error}") from None
        sys.modules[module_name] = module
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ConfigError(f"{key}: {str(path)!r} has no function {fn_name!r}")
    return fn


def _check_args(fn: Callable[..., Any], args: dict[str, Any], key: str, skip: int) -> None:
    """Unknown or missing builder arguments are config errors, named by their dotted key."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    params = list(signature.parameters.values())[skip:]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    accepted = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(args) - accepted)
    if unknown:
        raise ConfigError(
            [f"{key}.{name}: unknown argument (accepted: {', '.join(sorted(accepted)) or 'none'})" for name in unknown]
        )
    missing = [
        p.name
        for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in args
    ]
    if missing:
        raise ConfigError([f"{key}.{name}: required argument missing" for name in missing])


def model_builder(config: ModelConfig) -> tuple[Callable[..., Any], bool]:
    """The model builder and whether it takes DataInfo first (built-ins do, custom ones don't)."""
    if config.kind == "custom":
        return load_target(config.target or "", "model.target"), False
    return resolve(MODELS, config.kind), True


def data_builder(config: DataConfig) -> tuple[Callable[..., Any], bool]:
    """The data builder and whether it takes the seed first (built-ins do, custom ones don't)."""
    if config.kind == "custom":
        return load_target(config.target or "", "data.target"), False
    return resolve(DATASETS, config.kind), True


def check_preset(preset: Preset) -> None:
    """Everything that can be checked without building: builders exist and accept the args."""
    builder, builtin = model_builder(preset.model)
    _check_args(builder, preset.model.args, "model.args", 1 if builtin else 0)
    builder, builtin = data_builder(preset.data)
    _check_args(builder, preset.data.args, "data.args", 1 if builtin else 0)


def build_data(preset: Preset):
    """Build the DataBundle (custom data builders return (train, val); their info comes from the preset)."""
    from workbench.data.base import DataBundle, DataInfo

    builder, builtin = data_builder(preset.data)
    if builtin:
        try:  # a built-in builder rejecting its arguments is a config problem, not a crash
            result = builder(preset.train.seed, **preset.data.args)
        except (ValueError, TypeError, FileNotFoundError) as error:
            raise ConfigError(f"data.args ({preset.data.kind}): {error}") from None
    else:
        result = builder(**preset.data.args)
    if isinstance(result, DataBundle):
        return result
    if isinstance(result, tuple) and len(result) == 2:
        return DataBundle(result[0], result[1], infer_info(result[0], preset.task))
    raise ConfigError(f"data.target: must return (train_dataset, val_dataset), got {type(result).__name__}")


def infer_info(train, task: str):
    """DataInfo for a user's (train, val) datasets: input shape from the first sample; class count from
    the labels of an in-memory dataset (so built-in models can be used on custom data)."""
    import torch
    from torch.utils.data import TensorDataset

    from workbench.data.base import DataInfo

    info = DataInfo(task=task)
    try:
        x, y = train[0]
    except Exception:
        return info
    if isinstance(x, torch.Tensor):
        info.input_shape = tuple(x.shape)
    if task == "classification":
        if isinstance(train, TensorDataset) and not train.tensors[1].is_floating_point():
            info.num_classes = int(train.tensors[1].max()) + 1
    elif task == "binary":
        info.num_classes = 2
    return info


def build_model(preset: Preset, info):
    """Build the model for this data (built-in builders read sizes from DataInfo)."""
    builder, builtin = model_builder(preset.model)
    args = dict(preset.model.args)
    if builtin:
        params = inspect.signature(builder).parameters
        if "pretrained" in params:
            args["pretrained"] = preset.model.pretrained
        if "trust_remote_code" in params:
            args["trust_remote_code"] = preset.model.trust_remote_code
        try:
            return builder(info, **args)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"model.args ({preset.model.kind}): {error}") from None
    return builder(**args)
