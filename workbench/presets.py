"""Finding, loading, overriding and saving presets (TOML files validated by `workbench.config`)."""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from workbench.config import SECTIONS, Preset, validate_preset
from workbench.errors import ConfigError
from workbench.paths import user_path

DEFAULT_PRESET = "mlp-quadrants"


def packaged_presets_dir() -> Path:
    """Presets shipped with workbench: inside the wheel, or the repo's presets/ in a checkout."""
    inside = Path(__file__).parent / "presets"
    return inside if inside.is_dir() else Path(__file__).resolve().parent.parent / "presets"


def user_presets_dir() -> Path:
    """The user's own presets: ./presets in the working directory."""
    return Path.cwd() / "presets"


@dataclass(frozen=True)
class PresetFile:
    name: str
    path: Path
    origin: str  # "packaged" or "user"


def discover_presets() -> dict[str, PresetFile]:
    """All presets by name; the user's ./presets shadow packaged ones of the same name."""
    found: dict[str, PresetFile] = {}
    seen: set[Path] = set()
    for origin, folder in (("packaged", packaged_presets_dir()), ("user", user_presets_dir())):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            found[path.stem] = PresetFile(path.stem, resolved, origin)
    return found


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every way it can fail into a one-line ConfigError."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: preset file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a preset file") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read (permission denied)") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: malformed TOML: {error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None


def locate_preset(ref: str) -> Path:
    """A preset name (packaged or ./presets) or a path to a .toml file."""
    if ref.endswith(".toml") or os.sep in ref or "/" in ref:
        return user_path(ref)
    presets = discover_presets()
    if ref in presets:
        return presets[ref].path
    known = ", ".join(sorted(presets)) or "none"
    raise ConfigError(f"preset {ref!r} not found (known presets: {known}; or pass a path to a .toml file)")


def parse_value(text: str) -> Any:
    """Type an override value as TOML would (1e-3, true, [1, 2], "x"); bare words stay strings."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:
        raise ConfigError("--set: value nested too deeply") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides to raw preset data; the schema types them on validation."""
    result = copy.deepcopy(data)
    for override in overrides:
        key, sep, raw = override.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {override!r}: expected section.key=value")
        parts = key.split(".")
        if any(not part for part in parts):
            raise ConfigError(f"--set {key}: empty name in dotted key")
        if parts[0] not in SECTIONS and parts[0] not in Preset.model_fields:
            raise ConfigError(f"--set {key}: unknown key (sections: {', '.join(SECTIONS)})")
        if parts[0] in SECTIONS and len(parts) == 1:
            raise ConfigError(f"--set {key}: name a key inside the section, e.g. {key}.lr=0.01")
        if parts[0] in SECTIONS and parts[1] not in SECTIONS[parts[0]].model_fields:
            raise ConfigError(f"--set {key}: unknown key")
        node = result
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a table")
            node = child
        node[parts[-1]] = parse_value(raw.strip())
    return result


def _absolute_targets(data: dict[str, Any], base: Path) -> None:
    """Relative custom targets resolve against the preset file's folder."""
    for section in ("model", "data"):
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get("target"), str) and ":" in table["target"]:
            file_part, _, fn = table["target"].rpartition(":")
            path = user_path(file_part)
            if not path.is_absolute():
                path = (base / path).resolve()
            table["target"] = f"{path}:{fn}"


def load_preset(ref: str, overrides: list[str] | None = None) -> Preset:
    """Load, override and validate a preset by name or path."""
    path = locate_preset(ref)
    data = read_toml(path)
    if not data:  # an empty file would otherwise train every default under the file's name
        raise ConfigError(f"{path}: the preset file is empty (no sections or keys; start from `workbench presets`)")
    data.setdefault("name", path.stem)
    data = apply_overrides(data, overrides or [])
    _absolute_targets(data, path.resolve().parent)
    return validate_preset(data, source=str(path) if os.sep in ref or ref.endswith(".toml") else ref)


def preset_from_dict(data: dict[str, Any], overrides: list[str] | None = None) -> Preset:
    """Validate preset data that did not come from a file (a stored run's config, a TUI form)."""
    return validate_preset(apply_overrides(data, overrides or []))


# A user's own loop (`workbench.init`) has no fixed length unless its config says so.
OWN_LOOP_MAX_STEPS = 1_000_000_000


def loop_preset(name: str, config: dict[str, Any] | None = None, lr: float | None = None,
                weight_decay: float | None = None) -> Preset:
    """The recipe the diagnostics and the dashboard read for a run of a user's own loop: the defaults,
    named after the run (made safe), with what the loop told us: the optimizer's LR and weight decay
    (from `watch`), and the length when the config has an integer `max_steps`."""
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]", "-", str(name))[:100].lstrip("._-") or "run"
    steps = (config or {}).get("max_steps")
    if not (isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= OWN_LOOP_MAX_STEPS):
        steps = OWN_LOOP_MAX_STEPS
    optim: dict[str, Any] = {}
    if lr is not None and 0 < lr <= 100:
        optim["lr"] = float(lr)
    if weight_decay is not None and 0 <= weight_decay <= 10:
        optim["weight_decay"] = float(weight_decay)
    # loss "model": the loss is the loop's own, so no detector may assume which one it is.
    return Preset.model_validate({"name": safe, "description": "your own training loop (workbench.init)",
                                  "optim": optim, "train": {"max_steps": steps, "loss": "model"}})


def is_own_loop(run: dict[str, Any]) -> bool:
    """A run recorded by a user's own loop (`workbench.init`): its config is the user's dictionary, not a
    preset's sections."""
    return not ({"model", "data", "optim", "train"} <= set(run.get("config") or {}))


def preset_of(run: dict[str, Any]) -> Preset:
    """The preset a stored run (a `RunStore.get_run` row) was trained with: its recorded config. A run of
    a user's own loop has none (it continues from the user's script)."""
    if is_own_loop(run):
        raise ConfigError(f"run {run.get('run_id')}: recorded by your own training loop (workbench.init), not "
                          "from a preset: run your script again to continue it")
    return preset_from_dict(run["config"])


def dashboard_preset(run: dict[str, Any]) -> Preset:
    """What the dashboard reads for a stored run (name, length, task): its preset, or for a run of a
    user's own loop the recipe `loop_preset` makes for it."""
    if is_own_loop(run):
        return loop_preset(run["preset"], run.get("config"))
    return preset_of(run)


def preset_to_toml(preset: Preset) -> str:
    """Serialise a preset as TOML that `workbench train` accepts unchanged (None fields are left out)."""
    return tomli_w.dumps(preset.model_dump(mode="json", exclude_none=True))


def save_preset(preset: Preset, folder: Path | None = None) -> Path:
    """Write a preset to <folder>/<name>.toml (./presets by default), atomically."""
    folder = folder or user_presets_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{preset.name}.toml"
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(preset_to_toml(preset), encoding="utf-8")
    os.replace(tmp, path)
    return path


def diff_presets(base: Preset, other: Preset) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ: {key: (base_value, other_value)}."""
    return diff_dicts(base.model_dump(mode="json"), other.model_dump(mode="json"))


def diff_dicts(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> dict[str, tuple[Any, Any]]:
    diffs: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(a) | set(b)):
        dotted = f"{prefix}{key}"
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            diffs.update(diff_dicts(left, right, dotted + "."))
        elif left != right:
            diffs[dotted] = (left, right)
    return diffs
