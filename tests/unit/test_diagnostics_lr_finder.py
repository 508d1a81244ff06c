"""The LR finder: an exponential sweep that stops on divergence, and a suggestion that trains better."""

from __future__ import annotations

import json
import math

import pytest

from support.diagnostics import fast_preset, train
from workbench.diagnostics.lr_finder import find_lr, suggest_lr

BAD_DEFAULT = 1e-6


def test_the_sweep_is_exponential_and_stops_when_the_loss_blows_up():
    result = find_lr(fast_preset())
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:])]
    assert result.lrs[0] == pytest.approx(1e-7)
    assert max(ratios) == pytest.approx(min(ratios)) and ratios[0] == pytest.approx((10 / 1e-7) ** (1 / 99))
    assert result.stopped_early and len(result.lrs) < 100 and "4x the best" in result.reason
    assert len(result.losses) == len(result.smoothed) == len(result.lrs)
    assert result.lrs[0] < result.suggested_lr < result.min_loss_lr < result.lrs[-1]


def test_cancelling_stops_the_sweep():
    seen = []
    result = find_lr(fast_preset(), progress=lambda i, lr, loss: seen.append(i), should_stop=lambda: len(seen) >= 5)
    assert result.stopped_early and result.reason == "cancelled" and len(result.lrs) == 5
    assert result.suggested_lr is None  # too few points to judge


def test_a_flat_curve_gives_no_suggestion():
    lrs = [10 ** (-7 + i * 0.08) for i in range(100)]
    assert suggest_lr(lrs, [1.0] * 100)[0] is None
    rising = [1.0 + i * 0.01 for i in range(100)]
    assert suggest_lr(lrs, rising)[0] is None


@pytest.mark.slow
@pytest.mark.parametrize("base", ["mlp-quadrants", "mlp-tabular-binary"])
def test_the_suggestion_trains_better_than_a_bad_default(store, base):
    steps = {"train.max_steps": 200, "train.eval_every": 200}
    bad = fast_preset(base, **steps, **{"optim.lr": BAD_DEFAULT})
    suggestion = find_lr(bad).suggested_lr
    assert suggestion is not None and 1e-4 < suggestion < 1.0
    with_bad = train(bad, store).trainer.last_eval["val_loss"]
    with_suggestion = train(fast_preset(base, **steps, **{"optim.lr": suggestion}), store).trainer.last_eval["val_loss"]
    assert with_suggestion < 0.5 * with_bad, (suggestion, with_suggestion, with_bad)


def test_cli_lr_find_json(capsys):
    from workbench.cli import main

    code = main(["lr-find", "mlp-quadrants", "--set", "train.threads=1", "--steps", "60", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["preset"] == "mlp-quadrants"
    assert len(report["lrs"]) == len(report["smoothed"]) and math.isfinite(report["suggested_lr"])


def test_cli_lr_find_plot_names_the_command_to_apply_it(capsys):
    from workbench.cli import main

    assert main(["lr-find", "mlp-quadrants", "--set", "train.threads=1", "--steps", "60"]) == 0
    out = capsys.readouterr().out
    assert "LR finder" in out and "workbench train mlp-quadrants --set optim.lr=" in out


def test_cli_lr_find_rejects_a_bad_range(capsys):
    from workbench.cli import main

    assert main(["lr-find", "mlp-quadrants", "--start-lr", "1", "--end-lr", "0.1"]) == 2
