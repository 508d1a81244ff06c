"""Sweeps: one key given a list of values (`optim.lr=1e-4,3e-4,1e-3`, several keys: every combination)
expanded into one validated preset per combination. `workbench train P --sweep ...` and the TUI's sweep
prompt share this code, so a value refused in one is refused in the other, with the same reason."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from workbench.config import Preset
from workbench.errors import ConfigError
from workbench.presets import load_preset, preset_from_dict


@dataclass
class SweepRun:
    """One combination: the overrides that make it ('optim.lr=3e-4') and its validated preset."""

    overrides: list[str]
    preset: Preset

    @property
    def label(self) -> str:
        return " ".join(self.overrides)


def parse_sweeps(specs: list[str]) -> list[list[str]]:
    """['optim.lr=1e-4,3e-4', ...] -> one list of `key=value` overrides per combination."""
    axes = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        items = [v.strip() for v in values.split(",")] if sep else []
        if not key.strip() or not items or any(not v for v in items):
            raise ConfigError(f"--sweep {spec!r}: expected section.key=value1,value2,...")
        axes.append([f"{key.strip()}={value}" for value in items])
    if not axes:
        raise ConfigError("--sweep: give a key and its values, e.g. optim.lr=1e-4,3e-4,1e-3")
    return [list(combo) for combo in itertools.product(*axes)]


def split_specs(text: str) -> list[str]:
    """The TUI's one-line form: specs separated by spaces (`optim.lr=1e-4,3e-4 train.batch_size=32,64`)."""
    return text.split()


def sweep_presets(base: Preset | str, specs: list[str], overrides: list[str] | None = None,
                  check: bool = True) -> list[SweepRun]:
    """Every combination validated (schema, and with `check` the builders' arguments, which imports them)
    before any of them runs; the first bad one raises a ConfigError naming the key and why."""
    runs = []
    for combo in parse_sweeps(specs):
        try:
            if isinstance(base, Preset):
                preset = preset_from_dict(base.model_dump(mode="json"), [*(overrides or []), *combo])
            else:
                preset = load_preset(base, [*(overrides or []), *combo])
        except ConfigError as error:  # say which combination: the key alone doesn't tell which value
            raise ConfigError([f"{' '.join(combo)}: {problem}" for problem in error.problems]) from None
        runs.append(SweepRun(combo, preset))
    if check:
        check_runs(runs)
    return runs


def check_runs(runs: list[SweepRun]) -> None:
    """What can be checked without training: builders exist and accept the args (imports torch: call it
    off the UI thread)."""
    from workbench.builders import check_preset

    for run in runs:
        try:
            check_preset(run.preset)
        except ConfigError as error:
            raise ConfigError([f"{run.label or run.preset.name}: {problem}" for problem in error.problems]) from None
