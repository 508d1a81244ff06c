"""One number formatter: readable for tiny, huge and non-finite values, wherever numbers are shown."""

from __future__ import annotations

import math

from workbench.numbers import format_number, format_ratio


def test_plain_numbers_keep_four_significant_digits_and_go_scientific_at_the_extremes():
    assert format_number(0.0403412) == "0.04034"
    assert format_number(1.386) == "1.386"
    assert format_number(12345.6) == "12,346"
    assert format_number(53753545417083351274069426176.0) == "5.375e+28"
    assert format_number(3e-5) == "3e-05"
    assert format_number(1.124e18) == "1.124e+18"
    assert [format_number(v) for v in (math.nan, math.inf, -math.inf, 0, None)] == ["nan", "inf", "-inf", "0", "n/a"]


def test_fixed_decimals_line_up_in_range_and_never_print_thirty_digits():
    assert format_number(0.0403412, decimals=4) == "0.0403"
    assert format_number(0.978, decimals=3) == "0.978"
    assert format_number(53753545417083351274069426176.0, decimals=4) == "5.375e+28"
    assert format_number(1e-6, decimals=4) == "1e-06"
    assert format_number(123456.0, decimals=4) == "123,456"


def test_compact_axis_labels_use_one_suffix_or_an_exponent_never_both():
    assert [format_number(v, compact=True) for v in (750, 1500, 2.5e6, 3e9, 2e17, 5e22, 0.0025)] == [
        "750", "1.5k", "2.5M", "3B", "2e+17", "5e+22", "0.0025"]


def test_ratios_read_as_percent_then_as_multiples():
    assert format_ratio(0.45) == "45%"
    assert format_ratio(2.5) == "250%"
    assert format_ratio(27468.39) == "27,468x"
    assert format_ratio(math.nan) == "nan"


def test_the_charts_progress_line_and_messages_use_it():
    from workbench.diagnostics.base import fmt
    from workbench.tui.state import RunState
    from workbench.tui.widgets.charts import format_tick, format_value, tick_labels
    from workbench.tui.widgets.progress import RunProgress

    assert format_value(2e17) == "2e+17" and format_value(5e22) == "5e+22"
    assert format_tick(1500, "step") == "1.5k" and format_tick(750, "step") == "750"
    assert tick_labels([949.5, 950.0, 950.5]) == ["949.5", "950", "950.5"]  # neighbours told apart
    assert fmt(1.124e18) == "1.124e+18"
    state = RunState("p", 100)
    state.series_for("loss").append(10, 0.0, 53753545417083351274069426176.0)
    assert "loss 5.375e+28" in RunProgress(state).summary()[-1]
