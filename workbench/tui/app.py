"""Placeholder until the TUI issue lands: opens a screen naming the preset."""

from __future__ import annotations


def run_tui(args) -> int:
    from textual.app import App
    from textual.widgets import Footer, Header, Static

    class Placeholder(App):
        BINDINGS = [("q", "quit", "Quit")]

        def compose(self):
            yield Header()
            yield Static(f"Workbench — preset {args.preset or 'mlp-quadrants'}")
            yield Footer()

    Placeholder().run()
    return 0
