"""The diagnostics panel: findings by severity; the highlighted one's evidence and remedy below."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual import on
from textual.containers import Vertical, VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

SEVERITY_STYLE = {"critical": ("CRIT", "bold white on red3"), "warning": ("WARN", "bold black on yellow3"),
                  "info": ("INFO", "bold white on dodger_blue3")}


def finding_key(finding: dict[str, Any]) -> str:
    return f"{finding.get('code', '?')}|{finding.get('layer') or ''}"


def finding_line(finding: dict[str, Any]) -> Text:
    """One row: severity badge, code, layer, first step, repeat count."""
    badge, style = SEVERITY_STYLE.get(finding.get("severity", "warning"), ("????", "reverse"))
    text = Text.assemble((f" {badge} ", style), " ", (finding.get("code", "?"), "bold"))
    if finding.get("layer"):
        text.append(f" {finding['layer']}", style="cyan")
    text.append(f"  @{finding.get('step', 0):,}", style="dim")
    if finding.get("count", 1) > 1:
        text.append(f" ×{finding['count']}", style="dim")
    return text


def finding_detail(finding: dict[str, Any]) -> Text:
    """Message, remedy and evidence of one finding: the remedy right under the message, so it is on screen
    even where the panel has four rows (80x24)."""
    text = Text()
    text.append(finding.get("message", ""), style="bold")
    if finding.get("remedy"):
        text.append("\nTry: ", style="bold green")
        text.append(finding["remedy"])
    steps = f"first at step {finding.get('step', 0):,}"
    if finding.get("last_step") not in (None, finding.get("step")):
        steps += f", last at step {finding['last_step']:,}"
    if finding.get("count", 1) > 1:
        steps += f", seen {finding['count']} times"
    text.append(f"\n{steps}", style="dim")
    evidence = finding.get("evidence") or {}
    if evidence:
        text.append("\n\nEvidence\n", style="bold")
        for key, value in evidence.items():
            shown = value if isinstance(value, str) else json.dumps(_rounded(value), default=str)
            if len(shown) > 200:
                shown = shown[:197] + "..."
            text.append(f"  {key}: ", style="dim")
            text.append(f"{shown}\n")
    return text


def _rounded(value: Any) -> Any:
    """Evidence floats to 4 significant digits: enough to judge, short enough to read."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


class FindingsPanel(Vertical):
    """A list of findings (most severe first) and the selected finding's detail."""

    DEFAULT_CSS = """
    FindingsPanel {
        border: round $panel;
        border-title-color: $text;
        height: 1fr;
    }
    FindingsPanel.-critical { border: round $error; }
    FindingsPanel > OptionList { height: auto; max-height: 50%; border: none; padding: 0; }
    FindingsPanel > OptionList:focus { border: none; }
    FindingsPanel > #finding-detail { height: 1fr; padding: 0 1; }
    FindingsPanel .empty { color: $text-muted; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.border_title = "diagnostics"
        self.findings: list[dict[str, Any]] = []
        self._list = OptionList(id="finding-list")
        self._detail = Static("", id="finding-detail-text")

    def compose(self):
        yield self._list
        with VerticalScroll(id="finding-detail"):
            yield self._detail

    def on_mount(self) -> None:
        self._show_empty()

    def _show_empty(self) -> None:
        self._detail.update(Text("No findings yet: the diagnostics report problems here as they appear.",
                                 style="dim"))

    def set_findings(self, findings: list[dict[str, Any]]) -> None:
        """Show the findings (most severe first), keeping the highlighted finding highlighted.

        When the same findings only got new counts, their rows are replaced in place: rebuilding the
        list would change its height twice and relayout the whole screen."""
        findings = list(findings)
        keys = [finding_key(f) for f in findings]
        if keys and keys == [finding_key(f) for f in self.findings]:
            for index, (old, new) in enumerate(zip(self.findings, findings)):
                if old != new:
                    self._list.replace_option_prompt_at_index(index, finding_line(new))
            self.findings = findings
            highlighted = self._list.highlighted
            if highlighted is not None and highlighted < len(findings):
                self._detail.update(finding_detail(findings[highlighted]), layout=False)
            return
        highlighted = self._list.highlighted
        keep = finding_key(self.findings[highlighted]) if highlighted is not None and highlighted < len(
            self.findings) else None
        self.findings = findings
        self._list.clear_options()
        self._list.add_options([Option(finding_line(f), id=finding_key(f)) for f in self.findings])
        critical = sum(1 for f in self.findings if f.get("severity") == "critical")
        self.border_title = f"diagnostics ({len(self.findings)})" if self.findings else "diagnostics"
        self.set_class(critical > 0, "-critical")
        if not self.findings:
            self._show_empty()
            return
        index = next((i for i, f in enumerate(self.findings) if finding_key(f) == keep), 0)
        self._list.highlighted = index
        self._detail.update(finding_detail(self.findings[index]))

    @on(OptionList.OptionHighlighted, "#finding-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_index is not None and event.option_index < len(self.findings):
            self._detail.update(finding_detail(self.findings[event.option_index]))

    def selected(self) -> dict[str, Any] | None:
        index = self._list.highlighted
        return self.findings[index] if index is not None and index < len(self.findings) else None
