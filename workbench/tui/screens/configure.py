"""The form: every preset field, generated from the pydantic schema, validated as you type.

One tab per schema section (preset, model, data, optimizer, schedule, training). Each input shows its
bounds; an invalid value shows pydantic's reason under it, the tab of a section with problems is
marked, and Start is refused while any field is invalid. The side panel lists what differs from the
preset the form started from. "Save as preset" writes a TOML file into ./presets that `workbench train`
accepts unchanged. "Sweep" (ctrl+g) queues one run per value of a key (`optim.lr=1e-4,3e-4,1e-3`; several
keys: every combination) on top of the form's values, validated by the same code as `workbench train
--sweep`; they train one after another and the compare view opens on them.

The form's values live in a dict (typed as they are entered); a section's widgets are mounted the first
time its tab is shown, so the screen opens quickly however many fields the schema has.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static, Switch, TabbedContent, TabPane

from workbench.config import Preset
from workbench.presets import save_preset, user_presets_dir
from workbench.tui.form import (SECTION_TITLES, FieldSpec, FormResult, form_diff, form_fields, get_path,
                                parse_text, to_text, validate_form)
from workbench.tui.messages import StartDetachedRun, StartQueue, StartRun
from workbench.tui.screens.modals import ConfirmScreen, PromptScreen
from workbench.tui.screens.help import FORM_HELP_BINDINGS
from workbench.tui.widgets.data_source import DataSourcePanel
from workbench.tui.widgets.footer import KeyFooter
from workbench.tui.widgets.header import SafeHeader
from workbench.tui.widgets.ordered_input import OrderedInput


def _short(value: Any, width: int = 18) -> str:
    text = "∅" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


class ConfigureScreen(Screen):
    """Edit a preset's hyperparameters, then start it or save it as a new preset."""

    # The stylesheet's -narrow rules (a slimmer side panel, no bounds column) need the class set.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    BINDINGS = [
        Binding("ctrl+r", "start", "Start", priority=True),
        Binding("ctrl+s", "save", "Save as preset", priority=True),
        Binding("ctrl+t", "next_section", "Next section", priority=True),
        Binding("ctrl+o", "reset", "Reset to preset", priority=True),
        Binding("ctrl+g", "sweep", "Sweep", priority=True, tooltip="Sweep: one run per value"),
        *FORM_HELP_BINDINGS,
        Binding("escape", "back", "Back"),
    ]
    KEYS = "configure"  # its table in workbench.tui.keys (the help screen)

    def __init__(self, base: Preset, current: Preset | None = None, section: str | None = None):
        super().__init__()
        self.base = base
        self._open_section = section  # the tab to open on (the Data tab after choosing your own data)
        start = current or base
        self.specs: list[FieldSpec] = form_fields(start)
        self.by_path = {spec.path: spec for spec in self.specs}
        self.by_id = {spec.widget_id: spec for spec in self.specs}
        self.sections = list(dict.fromkeys(spec.section for spec in self.specs))
        self.values: dict[str, Any] = self._values_of(start)
        self.result: FormResult | None = None
        self._controls: dict[str, Widget] = {}  # mounted controls by path
        self._errors: dict[str, Label] = {}
        self._rows: dict[str, Horizontal] = {}
        self._shown_errors: dict[str, str] = {}
        self._mounted_sections: set[str] = set()
        self._tab_labels: dict[str, str] = {}

    def _values_of(self, preset: Preset) -> dict[str, Any]:
        """Typed values exactly as the form's inputs would produce them from the preset's text."""
        data = preset.model_dump(mode="json")
        values = {}
        for spec in self.specs:
            value = get_path(data, spec.path)
            values[spec.path] = value if spec.kind in ("choice", "bool") else parse_text(spec, to_text(spec, value))
        return values

    # -- building the form --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield SafeHeader()
        with Horizontal(id="configure-body"):
            with TabbedContent(id="sections"):
                for section in self.sections:
                    with TabPane(SECTION_TITLES.get(section, section), id=f"section-{section}"):
                        yield VerticalScroll(id=f"form-{section}", classes="form")
            with Vertical(id="configure-side"):
                yield Static("", id="form-status")
                yield Static("", id="diff", classes="diff")
                with Vertical(id="configure-buttons"):
                    with Horizontal(id="detach-row"):
                        yield Switch(False, id="run-detached")
                        yield Label("run detached")
                    yield Button("Start  ctrl+r", variant="success", id="start")
                    yield Button("Save as preset  ctrl+s", id="save")
                    yield Button("Reset  ctrl+o", id="reset")
        yield Static("", id="field-help")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "Workbench"
        self.sub_title = f"configure {self.base.name}"
        self._mount_section(self.sections[0])
        self.validate()
        if self._open_section in self.sections:
            self.show_section(self._open_section)

    def _mount_section(self, section: str) -> None:
        if section in self._mounted_sections:
            return
        self._mounted_sections.add(section)
        rows: list[Widget] = []
        for spec in self.specs:
            if spec.section == section:
                rows += self._field(spec)
        form = self.query_one(f"#form-{section}", VerticalScroll)
        if section == "data":  # where the data comes from: generated, or your own file, folder or hub id
            rows.insert(0, DataSourcePanel(self.result.preset if self.result and self.result.preset else self.base,
                                           self._preset_now, id="data-source-panel"))
        form.mount_all(rows)
        for spec in self.specs:
            if spec.section == section:
                self._show_field_error(spec.path)
        if rows:
            self.call_after_refresh(self._focus_first, section)

    def _focus_first(self, section: str) -> None:
        if self.query_one(TabbedContent).active != f"section-{section}":
            return  # the user moved on (ctrl+t typed fast): focusing here would switch the tab back
        first = next((self._controls[s.path] for s in self.specs if s.section == section), None)
        if first is not None:
            first.focus()

    def _field(self, spec: FieldSpec) -> list[Widget]:
        value = self.values.get(spec.path)
        control: Widget
        if spec.kind == "choice":
            choices = list(spec.choices)
            if value is not None and str(value) not in choices:
                choices.append(str(value))
            control = Select([(c, c) for c in choices], value=str(value), allow_blank=False, id=spec.widget_id,
                             classes="field-control", compact=True)
        elif spec.kind == "bool":
            control = Switch(bool(value), id=spec.widget_id, classes="field-control")
        else:
            placeholder = "empty = not set" if spec.kind in ("optional_text", "literal") else ""
            control = OrderedInput(to_text(spec, value), id=spec.widget_id, classes="field-control", placeholder=placeholder, compact=True)
        control.tooltip = spec.description
        hint = ("on" if value else "off") if spec.kind == "bool" else spec.bounds
        row = Horizontal(Label(spec.label, classes="field-label"), control,
                         Label(hint, classes="field-bounds", id=f"hint-{spec.widget_id}"), classes="field-row",
                         id=f"row-{spec.widget_id}")
        error = Label("", classes="field-error", id=f"err-{spec.widget_id}")
        self._controls[spec.path] = control
        self._rows[spec.path] = row
        self._errors[spec.path] = error
        return [row, error]

    # -- reading and validating ---------------------------------------------------------------------
    def control(self, path: str) -> Widget:
        """The input widget for a dotted preset key (its section is mounted if it wasn't)."""
        spec = self.by_path[path]
        self._mount_section(spec.section)
        return self._controls[path]

    def validate(self) -> FormResult:
        result = validate_form(self.specs, self.values)
        self.result = result
        for path in self._controls:
            self._show_field_error(path)
        diffs = form_diff(self.base, result.data)
        for path, row in self._rows.items():
            row.set_class(path in diffs, "-changed")
        self._mark_tabs(result)
        self._show_status(result)
        self._show_diff(diffs)
        for button in ("#start", "#save"):
            widget = self.query_one(button, Button)
            if widget.disabled != bool(result.errors):
                widget.disabled = bool(result.errors)
        return result

    def _show_field_error(self, path: str) -> None:
        if self.result is None or path not in self._errors:
            return
        problem = self.result.errors.get(path, "")
        if self._shown_errors.get(path, "") == problem and path in self._shown_errors:
            return
        self._shown_errors[path] = problem
        error = self._errors[path]
        error.update(problem)
        error.set_class(bool(problem), "-shown")
        self._rows[path].set_class(bool(problem), "-invalid")

    def _mark_tabs(self, result: FormResult) -> None:
        tabs = self.query_one(TabbedContent)
        for section in self.sections:
            count = sum(1 for path in result.errors if self._section_of(path) == section)
            label = SECTION_TITLES.get(section, section) + (f" ✗{count}" if count else "")
            if self._tab_labels.get(section) != label:
                self._tab_labels[section] = label
                tabs.get_tab(f"section-{section}").label = label

    def _section_of(self, path: str) -> str:
        spec = self.by_path.get(path)
        if spec is not None:
            return spec.section
        head = path.split(".")[0]
        return head if head in self.sections else "preset"

    def _show_status(self, result: FormResult) -> None:
        key = tuple(result.errors.items())
        if key == getattr(self, "_status_key", None):
            return
        self._status_key = key
        status = self.query_one("#form-status", Static)
        if result.errors:
            text = Text(f"✗ {len(result.errors)} invalid field{'s' * (len(result.errors) != 1)}: "
                        "Start is disabled", style="bold red")
            for key, why in result.errors.items():
                text.append(f"\n{key}: ", style="red")
                text.append(why)
        else:
            text = Text("✓ valid", style="bold green")
        status.update(text)

    def _show_diff(self, diffs: dict[str, tuple[Any, Any]]) -> None:
        self.diffs = diffs
        panel = self.query_one("#diff", Static)
        room = max(1, (panel.size.height - 2) // 2) if panel.size.height else len(diffs)
        text = Text()
        text.append(f"Changes from {self.base.name}\n", style="bold")
        if not diffs:
            text.append("none: the preset's own values", style="dim")
        for index, (key, (old, new)) in enumerate(diffs.items()):
            if index == room and len(diffs) > room:
                text.append(f"… and {len(diffs) - room} more", style="dim")
                break
            text.append(f"{key}\n", style="cyan")
            text.append(f"  {_short(old)}", style="red")
            text.append(" → ")
            text.append(f"{_short(new)}\n", style="green")
        panel.update(text, layout=False)  # a fixed-size panel: no relayout per keystroke

    def _spec_of(self, widget: Any) -> FieldSpec | None:
        return self.by_id.get(getattr(widget, "id", None) or "")

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        spec = self._spec_of(event.input)
        if spec is not None:
            self.values[spec.path] = parse_text(spec, event.value)
            self.validate()

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        spec = self._spec_of(event.select)
        if spec is not None and event.value is not Select.BLANK:
            self.values[spec.path] = event.value
            self.validate()

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        spec = self._spec_of(event.switch)
        if spec is not None:
            self.values[spec.path] = event.value
            self.query_one(f"#hint-{spec.widget_id}", Label).update("on" if event.value else "off")
            self.validate()

    @on(TabbedContent.TabActivated, "#sections")
    def _section_shown(self, event: TabbedContent.TabActivated) -> None:
        section = (event.pane.id or "").removeprefix("section-")
        if section in self.sections:
            self._mount_section(section)

    def on_descendant_focus(self, event) -> None:
        spec = self._spec_of(event.widget)
        if spec is not None:
            help_text = Text.assemble((spec.path, "bold cyan"), "  ", spec.description or "")
            if spec.bounds:
                help_text.append(f"  ({spec.bounds})", style="dim")
            self.query_one("#field-help", Static).update(help_text, layout=False)

    # -- actions --------------------------------------------------------------------------------------
    def action_next_section(self) -> None:
        tabs = self.query_one(TabbedContent)
        current = (tabs.active or "").removeprefix("section-")
        index = self.sections.index(current) if current in self.sections else -1
        tabs.active = f"section-{self.sections[(index + 1) % len(self.sections)]}"

    def show_section(self, section: str) -> None:
        self.query_one(TabbedContent).active = f"section-{section}"
        self._mount_section(section)

    def _refuse(self, what: str) -> bool:
        result = self.validate()
        if result.errors:
            first = next(iter(result.errors.items()))
            self.notify(f"{len(result.errors)} invalid field(s), e.g. {first[0]}: {first[1]}",
                        title=f"Cannot {what}", severity="error")
            self.app.bell()
            return True
        return False

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if self._refuse("start"):
            return
        if self.query_one("#run-detached", Switch).value:
            self.post_message(StartDetachedRun(self.result.preset))
        else:
            self.post_message(StartRun(self.result.preset))

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        if self._refuse("save"):
            return
        preset = self.result.preset
        suggested = preset.name if preset.name != self.base.name else f"{preset.name}-custom"

        def check(text: str) -> tuple[Any, str | None]:
            candidate = preset.model_copy()
            try:
                candidate.name = text.strip()
            except ValidationError as error:
                return None, f"name: {error.errors()[0]['msg']}"
            return candidate, None

        def chosen(candidate: Preset | None) -> None:
            if candidate is None:
                return
            path = user_presets_dir() / f"{candidate.name}.toml"
            if path.exists():
                self.app.push_screen(ConfirmScreen(f"Overwrite presets/{candidate.name}.toml?", "Overwrite", "Keep"),
                                     lambda yes: self._save(candidate) if yes else None)
            else:
                self._save(candidate)

        self.app.push_screen(PromptScreen("Save as preset", suggested, check,
                                          hint="Written to ./presets/<name>.toml; `workbench train <name>` runs it."),
                             chosen)

    def _save(self, preset: Preset) -> None:
        try:
            path = save_preset(preset)
        except OSError as error:
            self.notify(str(error), title="Save failed", severity="error")
            return
        self.saved_path = path
        self.notify(f"presets/{path.name} — run it with: workbench train {preset.name}", title="Saved")

    @on(Button.Pressed, "#reset")
    def action_reset(self) -> None:
        self.values = self._values_of(self.base)
        with self.prevent(Input.Changed, Select.Changed, Switch.Changed):
            for path, widget in self._controls.items():
                spec = self.by_path[path]
                value = self.values.get(path)
                if isinstance(widget, Select):
                    widget.value = str(value)
                elif isinstance(widget, Switch):
                    widget.value = bool(value)
                elif isinstance(widget, Input):
                    widget.value = to_text(spec, value)
        self.validate()

    def action_sweep(self) -> None:
        """Ask for `key=v1,v2,...`; every combination is validated as it is typed, and Start queues them."""
        if self._refuse("sweep"):
            return
        base = self.result.preset

        def check(text: str) -> tuple[Any, str | None]:
            from workbench.errors import ConfigError
            from workbench.sweep import split_specs, sweep_presets

            try:
                runs = sweep_presets(base, split_specs(text), check=False)  # the builders are checked off this thread
            except ConfigError as error:
                return None, "; ".join(error.problems)
            if len(runs) < 2:
                return None, "give at least two values, e.g. optim.lr=1e-4,3e-4,1e-3"
            return runs, None

        def chosen(runs: Any) -> None:
            if runs:
                self.post_message(StartQueue(runs))

        self.app.push_screen(PromptScreen(
            "Sweep: one run per value", "", check,
            hint="section.key=value1,value2,...  (several keys, separated by spaces: every combination). Each run "
                 "starts from this form's values; they train one after another, then the compare view opens."),
            chosen)

    def _preset_now(self) -> Preset:
        """The form's preset as it stands (the base one while a field is invalid)."""
        return self.result.preset if self.result is not None and self.result.preset is not None else self.base

    @on(DataSourcePanel.Chosen)
    def _data_chosen(self, message: DataSourcePanel.Chosen) -> None:
        """Your own data becomes ordinary [data] keys (and the task and loss its label calls for); the form
        is rebuilt on them so every new argument has its input. None puts the preset's own data back."""
        from workbench.errors import ConfigError
        from workbench.presets import preset_from_dict

        current = self._preset_now()
        data = current.model_dump(mode="json")
        if message.choice is None:
            for key in ("data", "task"):
                data[key] = self.base.model_dump(mode="json")[key]
            data["train"]["loss"] = self.base.train.loss
            overrides: list[str] = []
        else:
            overrides = message.choice.as_overrides(current)
        try:
            preset = preset_from_dict(data, overrides)
        except ConfigError as error:
            self.notify("; ".join(error.problems), title="Cannot use this data", severity="error")
            return
        self.app.switch_screen(ConfigureScreen(self.base, preset, section="data"))

    def action_back(self) -> None:
        self.app.pop_screen()
