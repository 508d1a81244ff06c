"""The `workbench` command line (contract in DESIGN.md). Heavy imports (torch, textual) happen lazily."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, StoreError
from workbench.status import RunStatus

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
STATUS_EXIT: dict[RunStatus, int] = {"completed": EXIT_OK, "stopped": EXIT_OK, "failed": EXIT_FAILED, "diverged": EXIT_DIVERGED,
               "interrupted": EXIT_INTERRUPTED, "invalid": EXIT_USAGE}


class UsageError(Exception):
    """Bad command-line usage: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: one line, exit 2
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description="A terminal training workbench for PyTorch.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    def runs_dir(p):
        p.add_argument("--runs-dir", type=Path, default=None,
                       help="where runs are recorded (default ./runs or $WORKBENCH_RUNS_DIR)")

    tui = sub.add_parser("tui", help="open the TUI (the default command)")
    tui.add_argument("--preset", default=None, help="preset name or .toml path to open")
    tui.add_argument("--start", action="store_true", help="open the dashboard and start training at once")
    tui.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V",
                     help="override a preset key, e.g. optim.lr=1e-3 (repeatable)")
    data_flags(tui)
    tui.add_argument("--fps", type=float, default=None, help="dashboard refresh rate (default 4)")
    tui.add_argument("--low-bandwidth", action="store_true",
                     help="for thin links: two charts at any width and 1 refresh per second (unless --fps)")
    runs_dir(tui)

    train = sub.add_parser("train", help="train a preset headless")
    train.add_argument("preset", nargs="?", help="preset name or path to a .toml file")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V",
                       help="override a preset key, e.g. optim.lr=1e-3 (repeatable)")
    data_flags(train)
    train.add_argument("--resume", metavar="RUN_ID", help="continue a run from its newest checkpoint")
    train.add_argument("--json", action="store_true", help="print the run summary as one JSON object on stdout")
    train.add_argument("--preflight", action="store_true",
                       help="run the pre-flight checks first; a failed check stops here (exit 2)")
    train.add_argument("--detach", action="store_true",
                       help="train in a background process that outlives this terminal; prints the run id")
    train.add_argument("--run-id", help=argparse.SUPPRESS)  # set by --detach for the background process
    train.add_argument("--profile", type=int, default=0, metavar="N",
                       help="profile N training steps with torch.profiler and print the report")
    train.add_argument("--sweep", action="append", default=[], metavar="K=V1,V2,...",
                       help="train once per value (several --sweep: every combination), then compare")
    runs_dir(train)

    lr_find = sub.add_parser("lr-find", help="sweep the learning rate on a fresh model and suggest one")
    lr_find.add_argument("preset", help="preset name or path to a .toml file")
    lr_find.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V",
                         help="override a preset key, e.g. optim.name=sgd (repeatable)")
    lr_find.add_argument("--steps", type=int, default=100, help="sweep steps (default 100)")
    lr_find.add_argument("--start-lr", type=float, default=1e-7, help="first learning rate (default 1e-7)")
    lr_find.add_argument("--end-lr", type=float, default=10.0, help="last learning rate (default 10)")
    lr_find.add_argument("--json", action="store_true", help="print the sweep as one JSON object on stdout")

    presets = sub.add_parser("presets", help="list the presets")
    presets.add_argument("--json", action="store_true")

    runs = sub.add_parser("runs", help="list recorded runs, newest first")
    runs.add_argument("--json", action="store_true")
    runs.add_argument("--limit", type=int, default=None)
    runs_dir(runs)

    show = sub.add_parser("show", help="a run's summary")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    runs_dir(show)

    stop = sub.add_parser("stop", help="ask a running run (any process) to checkpoint and stop")
    stop.add_argument("run_id")
    runs_dir(stop)

    compare = sub.add_parser("compare", help="compare two or more runs side by side")
    compare.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    compare.add_argument("--json", action="store_true")
    compare.add_argument("--baseline", metavar="RUN_ID", help="show deltas against this run (default: the first)")
    compare.add_argument("--target-val-loss", type=float, default=None,
                         help="also report the step and time at which each run reached this val loss")
    runs_dir(compare)

    export = sub.add_parser("export", help="export a run's metrics (csv, jsonl or tensorboard)")
    export.add_argument("run_id")
    export.add_argument("--format", choices=["csv", "jsonl", "tensorboard"], default="csv")
    export.add_argument("--output", type=Path, default=None, help="file (csv/jsonl) or folder (tensorboard)")
    runs_dir(export)

    attach = sub.add_parser("attach", help="open the dashboard on a run (another process's, or a finished one)")
    attach.add_argument("run_id")
    attach.add_argument("--fps", type=float, default=None, help="dashboard refresh rate (default 4)")
    runs_dir(attach)

    serve = sub.add_parser("serve", help="serve the TUI to a web browser (reach it through an SSH tunnel)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--preset", default=None, help="preset the served TUI opens on")
    serve.add_argument("--token", default=None,
                       help="the secret the page asks for (default: $WORKBENCH_TOKEN, else a new random one each "
                            "start; a value here is visible to other users in the process list)")
    serve.add_argument("--no-token", action="store_true",
                       help="serve without a token: anyone who can reach the port gets in (prints a warning)")
    runs_dir(serve)

    rollback = sub.add_parser("rollback", help="continue a diverged run from its last healthy state, safer "
                                               "(in the foreground; exit codes as train)")
    rollback.add_argument("run_id")
    change = rollback.add_mutually_exclusive_group()
    change.add_argument("--lr-factor", type=float, metavar="F",
                        help="multiply the learning rate by F (default 0.1 when --clip is not given)")
    change.add_argument("--clip", type=float, metavar="NORM", help="clip gradients at this norm instead")
    rollback.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    runs_dir(rollback)
    control = sub.add_parser("control", help="steer a running run in any process")
    control.add_argument("run_id")
    control.add_argument("action", choices=["pause", "resume", "checkpoint", "set-lr", "stop"])
    control.add_argument("value", nargs="?", help="the new learning rate, for set-lr")
    runs_dir(control)
    return parser


def data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="PATH_OR_ID",
                        help="train on your own data: a .csv/.tsv/.parquet/.json/.jsonl file, a folder of images "
                             "per class, a text file or folder, or a datasets id (sets [data], task and loss)")
    parser.add_argument("--label", metavar="COLUMN",
                        help="the column to predict (default: 'label', then 'target', then the last column)")


def apply_data_flags(args, ref: str) -> None:
    """--data/--label -> ordinary overrides in front of the user's own --set (which can still refine them)."""
    if getattr(args, "label", None) and not getattr(args, "data", None):
        raise UsageError("workbench: --label names a column of --data; give --data too")
    if not getattr(args, "data", None):
        return
    from workbench.data.source import describe_source
    from workbench.presets import load_preset

    preset = load_preset(ref, args.overrides)
    choice = describe_source(args.data, args.label, preset)
    for line in choice.summary_lines():
        print(f"data: {line}", file=sys.stderr)
    args.overrides = choice.as_overrides(preset) + list(args.overrides)
    args.data = args.label = None  # applied: a detached child or a sweep gets the overrides alone


def _version() -> str:
    from workbench import __version__

    return f"workbench {__version__}"


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            args = build_parser().parse_args(["tui"])
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a reader that left (`| head`) shows up here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except UsageError as error:
        print(str(error), file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as error:
        for problem in error.problems:
            print(f"workbench: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as error:
        print(f"workbench: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


EXIT_PIPE_CLOSED = 128 + 13  # what a shell reports for a command its reader left (SIGPIPE)


def _reader_gone() -> int:
    """stdout's reader closed the pipe (`workbench runs | head -1`): stop quietly, no traceback.

    The streams are pointed at /dev/null so the interpreter's last flush cannot raise again. A run the
    command trained is recorded already; its status is in the store (`workbench show RUN_ID`)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):  # a replaced stream (pytest's capture) has no descriptor
            pass
    return EXIT_PIPE_CLOSED


def _store(args, create: bool = True):
    from workbench.store import RunStore, default_runs_dir

    return RunStore(args.runs_dir or default_runs_dir(), create=create)


def _load(args):
    from workbench.presets import load_preset

    return load_preset(args.preset, args.overrides)


# -- train -----------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from workbench.presets import preset_of

    if args.resume and (args.preset or args.overrides):
        raise UsageError("workbench train: --resume takes no preset and no --set (the run's own config is used)")
    if not args.resume and not args.preset:
        raise UsageError("workbench train: name a preset (or --resume RUN_ID)")
    if args.resume and (args.data or args.label):
        raise UsageError("workbench train: --resume takes no --data (the run keeps the data it started with)")
    if args.resume and args.preflight:
        raise UsageError("workbench train: --preflight checks a preset before a new run, not a resumed one")
    if args.preset:
        apply_data_flags(args, args.preset)
    if args.detach:
        if args.sweep:
            raise UsageError("workbench train: --detach and --sweep cannot be combined")
        return launch_detached(args)
    if args.sweep:
        if args.resume:
            raise UsageError("workbench train: --sweep needs a preset, not --resume")
        return run_sweep(args)
    if args.resume:
        store = _store(args)
        run = store.get_run(args.resume)
        if run is None:
            raise ConfigError(f"--resume {args.resume}: no such run in {store.path}")
        if run["status"] == "running":
            raise ConfigError(f"--resume {args.resume}: the run is still running (pid {run['pid']})")
        preset = preset_of(run)
    else:
        preset = _load(args)
        from workbench.builders import check_preset

        check_preset(preset)  # builder args checked before anything touches the store
        preflight = None
        if args.preflight:
            preflight = _preflight(preset)
            if any(check["status"] == "fail" for check in preflight):
                if args.json:
                    print(json.dumps(finite_json({"preset": preset.name, "status": "invalid", "preflight": preflight}),
                                     default=_json_default))
                return EXIT_USAGE
        store = _store(args)
        return run_headless(preset, store, args.json, preflight=preflight, run_id=args.run_id,
                            profile_steps=args.profile)
    return run_headless(preset, store, args.json, resume_run_id=args.resume)


def run_sweep(args) -> int:
    """Validate every combination first (nothing runs if one is bad), then train them one after another."""
    from workbench.compare import compare_runs, format_comparison
    from workbench.sweep import sweep_presets

    presets = [(run.overrides, run.preset) for run in sweep_presets(args.preset, args.sweep, args.overrides)]
    store = _store(args)
    run_ids, codes = [], []
    for index, (combo, preset) in enumerate(presets, 1):
        print(f"sweep {index}/{len(presets)}: {' '.join(combo)}", file=sys.stderr)
        code = run_headless(preset, store, as_json=False, quiet=True)
        codes.append(code)
        run_ids.append(store.list_runs(1)[0]["run_id"])
    comparison = compare_runs(store, run_ids) if len(run_ids) > 1 else None
    if args.json:
        print(json.dumps(finite_json(comparison or {"runs": run_ids}), default=_json_default))
    elif comparison:
        print(format_comparison(comparison))
    return max(codes, key=lambda c: (c != EXIT_OK, c))


def launch_detached(args) -> int:
    """Validate here, then train in a new session (no controlling terminal) that survives SSH drops.

    The child writes everything to the store; its stdout/stderr go to runs/RUN_ID/train.log.
    """
    import subprocess

    from workbench.store import new_run_id

    store = _store(args)
    if args.resume:
        run = store.get_run(args.resume)
        if run is None:
            raise ConfigError(f"--resume {args.resume}: no such run in {store.path}")
        if run["status"] == "running":
            raise ConfigError(f"--resume {args.resume}: the run is still running (pid {run['pid']})")
        run_id, command = args.resume, ["--resume", args.resume]
    else:
        from workbench.builders import check_preset

        preset = _load(args)
        check_preset(preset)
        run_id = new_run_id(preset.name)
        command = [args.preset, *[item for o in args.overrides for item in ("--set", o)], "--run-id", run_id]
    log_path = store.run_dir(run_id) / "train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "workbench", "train", *command, "--runs-dir", str(store.runs_dir.resolve())],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd=os.getcwd(),
        )
    # Wait until the run is recorded (or the child fails to set up) so the id we print is real.
    deadline = time.time() + 300
    while time.time() < deadline:
        run = store.get_run(run_id)
        if run is not None and (not args.resume or run["pid"] == child.pid):
            break
        if child.poll() is not None:
            lines = log_path.read_text(errors="replace").strip().splitlines()
            raise ConfigError(f"detached run failed to start: {lines[-1] if lines else '(no output)'}")
        time.sleep(0.1)
    where = f" --runs-dir {store.runs_dir}" if args.runs_dir else ""
    if args.json:
        print(json.dumps({"run_id": run_id, "status": "running", "pid": child.pid, "log": str(log_path),
                          "store": str(store.path)}))
    else:
        print(run_id)
    print(f"training in the background (pid {child.pid}); log: {log_path}\n"
          f"  follow:  workbench attach {run_id}{where}\n  stop:    workbench stop {run_id}{where}",
          file=sys.stderr)
    return EXIT_OK


def _preflight(preset) -> list[dict]:
    """Run the pre-flight checks, one line each on stderr; returns them as dicts."""
    from workbench.diagnostics.preflight import run_preflight

    def show(check):
        where = f" [{check.layer}]" if check.layer else ""
        print(f"preflight {check.status:<4} {check.name}{where}: {check.message}", file=sys.stderr, flush=True)

    return [check.to_dict() for check in run_preflight(preset, progress=show)]


def cmd_lr_find(args) -> int:
    from workbench.diagnostics.lr_finder import find_lr, plot_text

    preset = _load(args)

    def show(index, lr, loss):
        if index % 10 == 0:
            print(f"lr-find step {index:>3}  lr {lr:.3g}  loss {loss:.4g}", file=sys.stderr, flush=True)

    try:
        result = find_lr(preset, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps, progress=show)
    except ConfigError:
        raise
    except Exception as error:  # the user's model or data code failed during the sweep
        print(f"workbench: lr-find failed: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(finite_json({"preset": preset.name, **result.to_dict()}), default=_json_default))
    else:
        print(plot_text(result, color=use_colour(sys.stdout)))
        print(f"{result.reason}")
        if result.suggested_lr:
            print(f"suggested lr {result.suggested_lr:.3g} (where the loss fell fastest; its lowest point came "
                  f"at lr {result.min_loss_lr:.3g})\napply it with: workbench train {args.preset} --set "
                  f"optim.lr={result.suggested_lr:.2g}")
        else:
            print("no suggestion: the loss never fell steadily during the sweep")
    return EXIT_OK


def use_colour(stream) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def cmd_rollback(args) -> int:
    """`workbench rollback RUN_ID [--lr-factor F | --clip NORM] [--json]`: what the dashboard's `a` does."""
    from workbench.diagnostics.actions import LR_FACTOR, _rollback_run, rollback_point, rollback_preset, \
        rollback_trainer
    from workbench.store import DB_NAME, RunStore, default_runs_dir

    lr_factor = args.lr_factor if args.clip is None else None
    if lr_factor is None and args.clip is None:
        lr_factor = LR_FACTOR
    runs_dir = Path(args.runs_dir or default_runs_dir())
    if not (runs_dir / DB_NAME).exists():
        raise ConfigError(f"--runs-dir: no run store in {str(runs_dir)!r}")
    store = RunStore(runs_dir)
    try:
        run = _rollback_run(store, args.run_id)
        preset = rollback_preset(run, lr_factor, args.clip)  # refuses a bad value before anything changes
        point = rollback_point(store, args.run_id)
        change = f"LR x {lr_factor:g}" if lr_factor is not None else f"gradient clipping at {args.clip:g}"
        print(f"workbench: rolling {args.run_id} back to step {point['step']:,} (diverged at step "
              f"{run['steps']:,}), continuing with {change}", file=sys.stderr)
        return run_headless(preset, store, args.json, build=lambda callbacks: rollback_trainer(
            store, args.run_id, lr_factor=lr_factor, grad_clip=args.clip, callbacks=callbacks, diagnostics=False))
    finally:
        store.close()


def run_headless(preset, store, as_json: bool, resume_run_id: str | None = None,
                 preflight: list[dict] | None = None, run_id: str | None = None, quiet: bool = False,
                 profile_steps: int = 0, build=None) -> int:
    """Train in the foreground; `build(callbacks)` makes the Trainer when it is not a plain new/resumed run."""
    from workbench.diagnostics import default_callbacks
    from workbench.progress import ProgressReporter
    from workbench.summary import run_summary
    from workbench.training.distributed import topology_from_env
    from workbench.training.trainer import Trainer

    main_rank = topology_from_env().is_main  # under torchrun only rank 0 reports
    reporter = ProgressReporter(preset)
    callbacks = [*default_callbacks(preset), reporter] if main_rank else default_callbacks(preset)
    trainer = build(callbacks) if build is not None else Trainer(preset, store, callbacks=callbacks,
                                                                 resume_run_id=resume_run_id, run_id=run_id)
    if profile_steps:
        try:
            trainer.profile(profile_steps)
        except ValueError as error:
            raise UsageError(f"workbench train: --profile: {error}") from None

    def on_signal(signum, frame):
        name = signal.Signals(signum).name
        trainer.stop("interrupted", f"{name} received at step {trainer.step}")

    handled = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, on_signal) for sig in handled}
    try:
        result = trainer.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reporter.close()
    if not main_rank:
        return STATUS_EXIT.get(result.status, EXIT_FAILED)
    if result.status == "invalid":
        for problem in result.errors or [result.reason or "invalid configuration"]:
            print(f"workbench: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    summary = run_summary(store, result.run_id)
    if result.status == "interrupted":
        print(f"workbench: run {result.run_id} interrupted at step {result.steps}; resume with:\n"
              f"  workbench train --resume {result.run_id}" +
              (f" --runs-dir {store.runs_dir}" if str(store.runs_dir) != "runs" else ""), file=sys.stderr)
    elif result.status in ("failed", "diverged"):
        print(f"workbench: run {result.run_id} {result.status}: {result.reason}", file=sys.stderr)
        if result.traceback and result.status == "failed":
            print(result.traceback.rstrip(), file=sys.stderr)
    if preflight is not None:
        summary["preflight"] = preflight
    if as_json:
        print(json.dumps(finite_json(summary), default=_json_default))
    elif not quiet:
        _print_summary(summary, sys.stdout)
    return STATUS_EXIT.get(result.status, EXIT_FAILED)


def _json_default(value: Any):
    return str(value)


def finite_json(value: Any) -> Any:
    """NaN/inf are not JSON: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _train_loss_note(summary: dict[str, Any]) -> str:
    steps = summary.get("train_loss_steps")
    if not steps:
        return ""
    return " (the last step's loss)" if steps == 1 else f" (mean of the last {steps:,} steps)"


def _print_summary(summary: dict[str, Any], stream) -> None:
    metrics = summary["metrics"]
    lines = [
        f"run       {summary['run_id']}",
        f"preset    {summary['preset']}   status {summary['status']}   steps {summary['steps']:,}",
        "metrics   " + "   ".join(f"{k} {_fmt(v)}" + (_train_loss_note(summary) if k == "train_loss" else "")
                                   for k, v in metrics.items() if v is not None),
        f"speed     {summary['throughput']['steps_per_second']:.1f} steps/s   "
        f"{summary['throughput']['samples_per_second']:.0f} samples/s",
    ]
    if summary.get("reason"):
        lines.append(f"reason    {summary['reason']}")
    for finding in summary["findings"]:
        where = f" in {finding['layer']}" if finding["layer"] else ""
        lines.append(f"[{finding['severity']}] {finding['code']}{where} at step {finding['step']}: "
                     f"{finding['message']} -> {finding['remedy']}")
    for saved in summary.get("checkpoints", []):
        lines.append(f"checkpoint {saved['kind']} at step {saved['step']:,}: {saved['path']}")
    lines.append(f"store     {summary['store']}")
    print("\n".join(lines), file=stream)


# -- presets, runs, show, stop ------------------------------------------------------------------
def cmd_presets(args) -> int:
    from workbench.catalog import preset_catalog

    catalog = preset_catalog()
    if args.json:
        print(json.dumps(catalog))
        return EXIT_OK
    width = max((len(entry["name"]) for entry in catalog), default=10)
    for entry in catalog:
        params = f"{entry['params']:,}" if entry.get("params") is not None else "?"
        print(f"{entry['name']:<{width}}  {entry['task']:<17} {entry['model_kind']:<22} {params:>12}  "
              f"{entry['description']}")
    return EXIT_OK


def _age(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def cmd_runs(args) -> int:
    store = _store(args)
    runs = store.list_runs(args.limit)
    if args.json:
        keys = ("run_id", "preset", "status", "steps", "started_at", "ended_at", "world_size")
        print(json.dumps([{key: run[key] for key in keys} for run in runs]))
        return EXIT_OK
    if not runs:
        print(f"no runs in {store.path}")
        return EXIT_OK
    header = ("run_id", "preset", "status", "steps", "started_at", "ended_at", "world_size")
    rows = [(run["run_id"], run["preset"], run["status"], f"{run['steps']:,}", _age(run["started_at"]),
             _age(run["ended_at"]), str(run["world_size"])) for run in runs]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {3, 6}  # numbers line up on the right
    for row in [header, *rows]:
        cells = [cell.rjust(width) if i in right else cell.ljust(width) for i, (cell, width) in
                 enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())
    return EXIT_OK


def cmd_show(args) -> int:
    from workbench.summary import run_summary

    store = _store(args)
    summary = run_summary(store, args.run_id)
    if summary is None:
        raise ConfigError(f"run {args.run_id!r}: not found in {store.path}")
    if args.json:
        print(json.dumps(finite_json(summary), default=_json_default))
    else:
        _print_summary(summary, sys.stdout)
    return EXIT_OK


def _running_run(args):
    """The store and the run named on the command line, which must be running (in any process)."""
    store = _store(args)
    run = store.get_run(args.run_id)
    if run is None:
        raise ConfigError(f"run {args.run_id!r}: not found in {store.path}")
    if run["status"] != "running":
        raise ConfigError(f"run {args.run_id!r}: not running (status {run['status']})")
    return store, run


def cmd_stop(args) -> int:
    store, _ = _running_run(args)
    store.send_command(args.run_id, "stop")
    print(f"asked run {args.run_id} to checkpoint and stop", file=sys.stderr)
    return EXIT_OK


def cmd_compare(args) -> int:
    from workbench.compare import compare_runs, format_comparison

    comparison = compare_runs(_store(args), args.run_ids, args.target_val_loss, args.baseline)
    if args.json:
        print(json.dumps(finite_json(comparison), default=_json_default))
    else:
        print(format_comparison(comparison))
    return EXIT_OK


def cmd_export(args) -> int:
    from workbench.export import export_run

    count, where = export_run(_store(args), args.run_id, args.format, args.output, sys.stdout)
    print(f"exported {count:,} records to {where}", file=sys.stderr)
    return EXIT_OK


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve_command(args) -> str:
    """The shell command textual-serve runs for each browser session."""
    import shlex

    parts = [sys.executable, "-m", "workbench", "tui"]
    if args.preset:
        parts += ["--preset", args.preset]
    if args.runs_dir:
        parts += ["--runs-dir", str(Path(args.runs_dir).resolve())]
    return " ".join(shlex.quote(part) for part in parts)


def cmd_serve(args) -> int:
    if not (0 < args.port < 65536):
        raise UsageError(f"workbench serve: --port {args.port}: not a TCP port")
    from workbench.serve import TOKEN_ENV, make_server, new_token

    from_env = os.environ.pop(TOKEN_ENV, None)  # the served TUIs need not inherit it
    if args.no_token and args.token is not None:
        raise UsageError("workbench serve: --token and --no-token cannot be combined")
    if args.token is not None and not args.token.strip():
        raise UsageError("workbench serve: --token: empty (leave it out for a random one)")
    try:
        import textual_serve.server  # noqa: F401
    except ImportError:
        raise ConfigError("serve needs textual-serve: pip install 'workbench[serve]'") from None
    if args.host not in LOOPBACK:
        print(f"workbench: warning: serving on {args.host} exposes the workbench — which runs training code — to "
              "the network. Prefer the default 127.0.0.1 and an SSH tunnel: ssh -L 8000:127.0.0.1:8000 HOST",
              file=sys.stderr)
    token = None if args.no_token else (args.token or from_env or new_token())
    if token is None:
        print(f"workbench: warning: --no-token: anyone who can reach port {args.port} on {args.host} — on loopback, "
              "every user of this machine — can use the workbench and run training code as you", file=sys.stderr)
    make_server(serve_command(args), host=args.host, port=args.port, token=token).serve()
    return EXIT_OK


def cmd_control(args) -> int:
    store, _ = _running_run(args)
    value = None
    if args.action == "set-lr":
        from workbench.training.control import parse_lr

        try:
            value = parse_lr(args.value)
        except ValueError as error:
            raise UsageError(f"workbench control: set-lr: {error}, e.g. set-lr 1e-4") from None
    elif args.value is not None:
        raise UsageError(f"workbench control: {args.action} takes no value")
    store.send_command(args.run_id, args.action.replace("-", "_"), None if value is None else repr(value))
    print(f"sent {args.action} to run {args.run_id}", file=sys.stderr)
    return EXIT_OK


def cmd_tui(args) -> int:
    from workbench.presets import DEFAULT_PRESET
    from workbench.tui.app import run_tui

    if getattr(args, "data", None) or getattr(args, "label", None):  # here, so the TUI never imports the CLI
        args.overrides = list(getattr(args, "overrides", None) or [])
        apply_data_flags(args, args.preset or DEFAULT_PRESET)
    return run_tui(args)


def cmd_attach(args) -> int:
    from workbench.tui.app import run_attach

    return run_attach(args)


COMMANDS = {
    "tui": cmd_tui,
    "attach": cmd_attach,
    "train": cmd_train,
    "lr-find": cmd_lr_find,
    "presets": cmd_presets,
    "runs": cmd_runs,
    "show": cmd_show,
    "stop": cmd_stop,
    "control": cmd_control,
    "rollback": cmd_rollback,
    "compare": cmd_compare,
    "serve": cmd_serve,
    "export": cmd_export,
}
