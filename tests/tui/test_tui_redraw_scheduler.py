"""The chart scheduler's pacing while a run trains: the charts it draws redraw at most every
`training_interval` seconds then, at `min_interval` otherwise, and a key press (force) draws at once."""

from __future__ import annotations

from workbench.tui.widgets.charts import RedrawBudget, RedrawScheduler


class FakeChart:
    def __init__(self, name: str, paced: bool = False):
        self.name, self.paced = name, paced
        self.dirty, self.is_on_screen = True, True
        self.last_redraw, self.priority, self.cost_estimate = -100.0, 1, 0.0
        self.now = 0.0
        self.redraws = 0

    def redraw(self) -> None:
        self.last_redraw, self.dirty = self.now, False
        self.redraws += 1


def _drawn(scheduler: RedrawScheduler, charts: list[FakeChart], now: float, limited: bool, force: bool = False):
    for chart in charts:
        chart.now = now
        chart.dirty = True  # new data every beat
    return [c.name for c in scheduler.tick(limited, now=now, cpu=0.0, force=force)]


def test_while_training_the_charts_redraw_on_every_other_beat():
    charts = [FakeChart("lr"), FakeChart("grad"), FakeChart("loss", paced=True)]
    scheduler = RedrawScheduler(charts, RedrawBudget(share=1.0), min_interval=0.25, training_interval=1.75)
    beats = [0.0, 1.0, 2.0, 3.25, 4.25, 5.5, 6.5]  # progress beats come 1-1.25 s apart
    drawn = [_drawn(scheduler, charts, t, limited=True) for t in beats]
    assert drawn == [["lr", "grad"], [], ["lr", "grad"], [], ["lr", "grad"], [], ["lr", "grad"]]
    # the paced chart is the progress line's to draw, never the scheduler's, while training
    assert charts[2].redraws == 0


def test_without_a_run_training_min_interval_applies_and_a_key_press_draws_at_once():
    charts = [FakeChart("lr"), FakeChart("loss", paced=True)]
    scheduler = RedrawScheduler(charts, RedrawBudget(share=1.0), min_interval=0.25, training_interval=1.75)
    assert _drawn(scheduler, charts, 0.0, limited=False) == ["lr", "loss"]
    assert _drawn(scheduler, charts, 0.3, limited=False) == ["lr", "loss"]
    assert _drawn(scheduler, charts, 0.4, limited=True) == []
    assert _drawn(scheduler, charts, 0.5, limited=True, force=True) == ["lr", "loss"]
