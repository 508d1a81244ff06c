"""Run statuses: the one list of how a run stands, for the store, the CLI's exit codes and the TUI.

    starting     the TUI has asked for the run; its trainer is being built (never stored)
    running      training; the run's row in the store heartbeats
    completed    reached train.max_steps (or early stopping)
    stopped      stopped on request (x in the TUI, `workbench control stop`); a checkpoint was saved
    diverged     a non-finite loss or gradients stopped it (a rollback can continue it)
    failed       an exception in set-up or training; the traceback is recorded
    interrupted  a signal, a lost process or a quit; resumable from its newest checkpoint
    invalid      refused before anything was recorded (a bad preset or data): no run in the store
"""

from __future__ import annotations

from typing import Literal, get_args

RunStatus = Literal["starting", "running", "completed", "stopped", "diverged", "failed", "interrupted", "invalid"]
STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
# How a run can end; once a run has one of these its status never changes (except a resume or rollback).
ENDED: tuple[RunStatus, ...] = ("completed", "stopped", "diverged", "failed", "interrupted", "invalid")
# The endings a stored run can have ("invalid" runs are never stored).
RECORDED_ENDINGS: tuple[RunStatus, ...] = tuple(status for status in ENDED if status != "invalid")
