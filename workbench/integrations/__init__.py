"""Integrations with other trainers, built on the public API (`workbench.init` / `Run`).

- `workbench.integrations.transformers.WorkbenchCallback`: a Hugging Face `Trainer` callback.
- `workbench.integrations.lightning.WorkbenchLogger`: a Lightning logger (with `logger.callback`).

Each submodule imports its framework; importing this package imports neither (both are optional extras).
"""
