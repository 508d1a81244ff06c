"""The Textual front end. Nothing in workbench.training imports from here."""
