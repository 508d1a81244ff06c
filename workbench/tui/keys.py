"""Every key of every screen, in words a user knows: the help screen (? or f1) shows these tables, the
README's TUI tables repeat them (a test keeps the two identical), and the footers keep the keys in
`FOOTER_ORDER` when the terminal is too narrow for all of them.

A row is (keys as typed, what they do). Keys of one row are separated by ", " (alternatives) or " / "
(a pair: zoom in / out).
"""

from __future__ import annotations

KeyRow = tuple[str, str]

HELP_ROW: KeyRow = ("?, f1", "this help (escape closes it)")
PALETTE_ROW: KeyRow = ("ctrl+p", "the command palette: every key of the screen is also a command there")

PRESETS: list[KeyRow] = [
    ("↑ ↓", "move"),
    ("enter", "open the form"),
    ("s", "start with the preset's defaults"),
    ("space", "mark / unmark the preset for a queue and move down (the number shows the order)"),
    ("u", "queue the marked presets: they train one after another, then the compare view opens on them"),
    ("h", "the runs screen (every recorded run)"),
    ("r", "reload the list"),
    HELP_ROW,
    PALETTE_ROW,
    ("q, ctrl+q", "quit"),
]

CONFIGURE: list[KeyRow] = [
    ("tab, shift+tab", "next / previous field"),
    ("ctrl+t", "next section (or ←/→ on the tabs)"),
    ("ctrl+r", "start training"),
    ("ctrl+s", "save as a preset: `./presets/<name>.toml`, which `workbench train <name>` runs unchanged"),
    ("ctrl+o", "reset every field to the preset"),
    ("ctrl+g", "sweep: one run per value of a key, from the form's values"),
    ("f1", "this help (? too, outside a text field; escape closes it)"),
    PALETTE_ROW,
    ("escape", "back to the presets"),
    ("ctrl+q", "quit"),
]

DASHBOARD: list[KeyRow] = [
    ("p", "pause / resume"),
    ("x", "stop (after a confirmation; a checkpoint is saved first)"),
    ("c", "save a checkpoint now"),
    ("r", "change the learning rate (validated against the schema; applies from the next step)"),
    ("f", "profile the next 20 steps with torch.profiler (on the trainer thread) and show the report: top "
          "operators by self time, data wait vs compute, memory per step; while paused or after the run, show "
          "the last report again"),
    ("t", "after a cpu_contention finding: use as many intra-op threads as it says fit, from the next step"),
    ("a", "after a divergence: roll back to the last healthy state (the snapshot from before the explosion; "
          "the dialog names its step) and continue with LR x 0.1 or with clipping at 1.0"),
    ("l", "log-scale y axis"),
    ("e", "smoothing: EMA weight 0 → 0.6 → 0.8 → 0.9 → 0.95 → 0.99 (the raw curve stays, faint)"),
    ("w", "x axis in steps or wall time"),
    ("+ / -", "zoom into the most recent half / quarter / ... of the run, and back out"),
    ("0", "reset zoom and the log scale"),
    ("v", "next chart (the second chart in the narrow layout)"),
    ("z", "show the selected chart alone"),
    ("n", "after the run ended: a new run of the same preset"),
    ("k", "in a queue: cancel the runs not started yet (the current one goes on)"),
    HELP_ROW,
    PALETTE_ROW,
    ("escape", "back to the previous screen (once the run has ended)"),
    ("q, ctrl+q", "quit; while a run is active it asks first, then stops it with a checkpoint"),
]

RUNS: list[KeyRow] = [
    ("↑ ↓", "move"),
    ("enter", "open the run's dashboard (attached: a finished run shows its full history, a live one keeps "
              "updating; leaving never stops it)"),
    ("space", "mark / unmark the run for comparison and move down (the first marked is the baseline)"),
    ("c", "compare the marked runs (two or more)"),
    ("o", "sort by the next column (clicking a column header sorts by it)"),
    ("i", "reverse the sort"),
    ("/", "filter: `status:running`, `preset:mlp`, and any words (matched against id, preset, status and "
          "reason)"),
    ("u", "resume an interrupted run here, from its newest checkpoint"),
    ("r", "re-read the store now"),
    HELP_ROW,
    PALETTE_ROW,
    ("escape", "back"),
    ("q, ctrl+q", "quit"),
]

COMPARE: list[KeyRow] = [
    ("w", "x axis: steps → samples seen → wall time"),
    ("l", "log-scale y axis"),
    ("↑ ↓, b, enter", "move, then pin the highlighted run as the baseline: the deltas are recomputed against it"),
    ("t", "target val loss (empty: none): steps and time each run took to reach it"),
    ("r", "reload now"),
    HELP_ROW,
    PALETTE_ROW,
    ("escape", "back"),
    ("q, ctrl+q", "quit"),
]

TABLES: dict[str, list[KeyRow]] = {
    "presets": PRESETS, "configure": CONFIGURE, "dashboard": DASHBOARD, "runs": RUNS, "compare": COMPARE,
}

# What a footer keeps, most important first, when the terminal is too narrow for every key (actions, as
# bound). Keys not listed go first; the help key is always kept, so the rest stay one key away.
FOOTER_ORDER: dict[str, list[str]] = {
    "presets": ["app.help", "select_cursor", "start_defaults", "screen.mark", "queue_marked", "runs", "app.quit",
                "reload"],
    "configure": ["app.help", "start", "save", "sweep", "next_section", "back", "reset"],
    "dashboard": ["app.help", "toggle_pause", "stop", "recover", "fewer_threads", "new_run", "cancel_queue",
                  "app.quit", "set_lr",
                  "checkpoint", "profile", "log_y", "zoom_in", "reset_zoom", "next_chart", "maximize_chart",
                  "smoothing", "x_axis", "back"],
    "runs": ["app.help", "select_cursor", "screen.mark", "compare", "resume", "filter", "sort", "app.quit", "back"],
    "compare": ["app.help", "pin_baseline", "target", "x_axis", "log_y", "reload", "back", "app.quit"],
}

# Binding key names as the tables write them.
KEY_NAMES = {"plus": "+", "minus": "-", "equals_sign": "=", "slash": "/", "question_mark": "?", "up": "↑",
             "down": "↓", "left": "←", "right": "→"}


def row_keys(row: KeyRow) -> set[str]:
    """The keys a row names ("q, ctrl+q" -> {"q", "ctrl+q"}; "+ / -" -> {"+", "-"})."""
    keys: set[str] = set()
    for part in row[0].replace(" / ", ", ").split(", "):
        keys.update(part.split(" ") if part in ("↑ ↓",) else [part])
    return keys
