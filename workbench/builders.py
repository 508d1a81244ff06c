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
from workbench.paths import user_path
from workbench.registry import DATASETS, MODELS, resolve


def load_target(target: str, key: str) -> Callable[..., Any]:
    """Import `file.py:function` and return the function."""
    file_part, _, fn_name = target.rpartition(":")
    path = user_path(file_part)
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


def build_data(preset: Preset, fitted: dict[str, Any] | None = None):
    """Build the DataBundle (custom data builders return (train, val); their info comes from the preset).

    `fitted`: what a builder learned from the training split on the run's first start (a table's
    standardisation statistics), passed back on resume so the run keeps seeing the same features."""
    from workbench.data.base import DataBundle, DataInfo

    builder, builtin = data_builder(preset.data)
    if builtin:
        args = dict(preset.data.args)
        if fitted is not None and "fitted" in inspect.signature(builder).parameters:
            args["fitted"] = fitted
        try:  # a built-in builder rejecting its arguments is a config problem, not a crash
            result = builder(preset.train.seed, **args)
        except (ValueError, TypeError, FileNotFoundError) as error:
            raise ConfigError(f"data.args ({preset.data.kind}): {error}") from None
    else:
        result = builder(**preset.data.args)
    if isinstance(result, tuple) and len(result) == 2 and not isinstance(result, DataBundle):
        result = DataBundle(result[0], result[1], infer_info(result[0], preset.task))
    if isinstance(result, DataBundle):
        fit_task(preset, result.info)
        result.info.sample = fit_sample(result)
        return result
    raise ConfigError(f"data.target: must return (train_dataset, val_dataset), got {type(result).__name__}")


LABEL_TASKS = ("classification", "binary", "regression")


def fit_task(preset: Preset, info) -> None:
    """The preset's task must be what the data's label is: two classes train as `binary` under a BCE
    preset; any other disagreement (a number to predict under a classifier) is a one-line error."""
    if info.task == preset.task or info.task not in LABEL_TASKS or preset.task not in LABEL_TASKS:
        return
    if preset.task == "binary" and info.task == "classification" and info.num_classes == 2:
        info.task = "binary"
        return
    found = {"regression": "a number to predict (regression)",
             "classification": f"{info.num_classes} classes (classification)",
             "binary": "two classes (binary)"}[info.task]
    fix = {"regression": 'task = "regression" and train.loss = "mse"',
           "classification": 'task = "classification" and train.loss = "cross_entropy"',
           "binary": 'task = "binary" and train.loss = "bce_with_logits"'}[info.task]
    raise ConfigError(f"task: the preset says {preset.task!r} but the data's label is {found}; set {fix} "
                      "(--data does this for you)")


def fit_sample(data):
    """Two validation inputs (no augmentation, taken under a forked generator so the run's random stream
    is untouched) for `check_fits`; None when the dataset can't hand them out here."""
    import torch
    from torch.utils.data import default_collate

    with torch.random.fork_rng(devices=[]):
        try:
            source = data.val if data.val is not None and len(data.val) >= 2 else data.train
            if hasattr(source, "__getitems__"):
                x, _ = source.__getitems__([0, 1])
            else:
                x, _ = (data.info.collate or default_collate)([source[0], source[1]])
        except Exception:  # an iterable or odd dataset: the trainer meets it with its own context
            return None
    return x if isinstance(x, torch.Tensor) else None


def check_fits(preset: Preset, model, info) -> None:
    """Run the model on the data's two sample inputs before anything trains: a model that can't take them,
    or whose output doesn't match the classes (a 4-class head on 3 classes), is a one-line error."""
    import torch

    x = info.sample
    if x is None or info.task not in LABEL_TASKS or preset.train.loss == "model" or not isinstance(model, torch.nn.Module):
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(x)
    except Exception as error:
        shape = "x".join(str(d) for d in x.shape[1:])
        raise ConfigError(f"model: does not fit the data: an input of shape {shape} fails in the model "
                          f"({type(error).__name__}: {str(error).splitlines()[0][:160]})") from None
    finally:
        model.train(was_training)
    output = getattr(output, "logits", output)
    if not isinstance(output, torch.Tensor) or output.dim() < 1 or output.shape[0] != x.shape[0]:
        return
    width = output.shape[-1] if output.dim() > 1 else 1
    want = {"classification": info.num_classes, "binary": 1, "regression": 1}[info.task]
    if want and width != want:
        what = {"classification": f"{want} classes", "binary": "one logit (binary)",
                "regression": "one number (regression)"}[info.task]
        classes = info.extra.get("classes")
        named = f" ({', '.join(map(str, classes[:10]))})" if classes and info.task == "classification" else ""
        raise ConfigError(f"model: gives {width} outputs per sample, but the data needs {what}{named}")


DATA_STATE = "data_state.json"


def save_fitted(run_dir: Path, info) -> None:
    """Keep what the data builder learned from the training split with the run (resume reads it back)."""
    import json

    fitted = info.extra.get("fitted")
    if fitted is None:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (DATA_STATE + ".tmp")
    tmp.write_text(json.dumps(fitted, indent=1), encoding="utf-8")
    tmp.replace(run_dir / DATA_STATE)


def load_fitted(run_dir: Path) -> dict[str, Any] | None:
    import json

    path = run_dir / DATA_STATE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: the run's data statistics cannot be read ({error})") from None


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
            model = builder(info, **args)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"model.args ({preset.model.kind}): {error}") from None
        check_fits(preset, model, info)  # a user's own model is left to its first step: its forward is theirs
        return model
    return builder(**args)
