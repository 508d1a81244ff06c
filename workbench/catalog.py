"""The preset list with parameter counts. Counts need the model built once; they are cached by config."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError
from workbench.presets import discover_presets, load_preset


def _cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workbench" / "param_counts.json"


def _key(preset) -> str:
    relevant = {"model": preset.model.model_dump(mode="json"), "data": preset.data.model_dump(mode="json"),
                "task": preset.task}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:24]


def count_preset_parameters(preset) -> int:
    """Build the data and model once (on CPU, no training) and count parameters."""
    import torch

    from workbench.builders import build_data, build_model

    if preset.model.args.get("base_steps"):  # pre-training a base changes its weights, not their count
        preset = preset.model_copy(deep=True)
        preset.model.args["base_steps"] = 0
    torch.manual_seed(0)
    data = build_data(preset)
    model = build_model(preset, data.info)
    return sum(p.numel() for p in model.parameters())


def preset_catalog(compute_missing: bool = True) -> list[dict[str, Any]]:
    """name, description, task, model kind, params (cached), origin and path for every preset."""
    cache_file = _cache_path()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    changed = False
    entries = []
    for name, found in sorted(discover_presets().items()):
        try:
            preset = load_preset(str(found.path))
        except ConfigError as error:
            entries.append({"name": name, "description": f"invalid preset: {error}", "task": "?", "model_kind": "?",
                            "params": None, "origin": found.origin, "path": str(found.path), "valid": False})
            continue
        key = _key(preset)
        params = cache.get(key)
        if params is None and compute_missing:
            try:
                params = count_preset_parameters(preset)
                cache[key] = params
                changed = True
            except Exception:  # a preset whose model can't be built here still gets listed
                params = None
        entries.append({
            "name": preset.name, "description": preset.description, "task": preset.task,
            "model_kind": preset.model.kind, "params": params, "watch": preset.watch,
            "origin": found.origin, "path": str(found.path), "valid": True,
        })
    if changed:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_file)
        except OSError:
            pass
    return entries
