"""A Lightning `Trainer` run as a workbench run:

    logger = WorkbenchLogger()
    trainer = Trainer(logger=logger, callbacks=[logger.callback])

`WorkbenchLogger` records what Lightning logs (under workbench names: `train_loss` -> `loss`, `val_acc`
-> `val_accuracy`) and ends the run when Lightning finalizes it. `logger.callback` records the run with
the module's hyperparameters and the trainer's settings as its config, watches the module and its
optimizer (gradient telemetry, probes, NaN origin; pause, set-lr and checkpoint through the optimizer's
step hooks, the checkpoint in the run's own folder), and turns the run's stop request (or a divergence)
into `trainer.should_stop`. Without the callback the metrics are still recorded, but nothing is watched
or steered. `logger.run` is the `Run` (None until the fit begins).

Built on `lightning.pytorch` where that is installed, else on `pytorch_lightning`.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

try:
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import Logger
except ImportError:
    from pytorch_lightning.callbacks import Callback
    from pytorch_lightning.loggers import Logger

from workbench.integrations.names import numeric

# Lightning's finalize statuses -> the run's ending. "success" lets the run decide (completed, or
# stopped / diverged when it asked Lightning to stop); "finished" is a SLURM requeue: it will go on.
_FINALIZE = {"success": None, "failed": "failed", "finished": "interrupted"}


def _trainer_settings(trainer) -> dict[str, Any]:
    names = ("max_epochs", "max_steps", "min_epochs", "min_steps", "accumulate_grad_batches",
             "gradient_clip_val", "gradient_clip_algorithm", "precision", "log_every_n_steps",
             "val_check_interval", "check_val_every_n_epoch", "num_devices", "world_size")
    return {name: getattr(trainer, name, None) for name in names}  # the run keeps what JSON cannot as text


class WorkbenchLogger(Logger):
    """Record a Lightning run in the workbench. `runs_dir` and `name` as `workbench.init`'s; the name
    defaults to the LightningModule's class name. Add `logger.callback` to the Trainer's callbacks."""

    def __init__(self, runs_dir: str | None = None, name: str | None = None):
        super().__init__()
        self.runs_dir = runs_dir
        self._name = name
        self.run = None
        self.callback = WorkbenchCallback(self)
        self._hparams: dict[str, Any] = {}
        self._finished = False

    # -- the Logger interface ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The run's name (Lightning puts its checkpoints under default_root_dir/NAME/VERSION)."""
        if self.run is not None:
            return self.run.name
        return self._name or "workbench"

    @property
    def version(self) -> str | None:
        return self.run.id if self.run is not None else None

    @property
    def experiment(self):
        """The `Run` (None before the fit begins)."""
        return self.run

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Kept for the run's config: Lightning calls this as the fit starts, before the run exists when
        the callback is attached (the callback records the module's hyperparameters itself)."""
        if params is None:
            return
        if not isinstance(params, Mapping):
            params = vars(params)  # an argparse.Namespace
        self._hparams.update(params)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        # Not rank-zero-only: every rank calls the run alike and the run lets rank 0 alone write.
        if self._finished:
            return
        if self.run is None:  # no callback attached: record the run with what is known now
            self.start({"trainer": "lightning", "hparams": self._hparams}, "lightning")
        self.run.log(numeric(metrics), step=step)

    def finalize(self, status: str) -> None:
        """Lightning's last word: "success" (fit returned), "failed" (an exception, inside its except
        block: sys.exc_info() holds it), "finished" (SLURM requeue)."""
        if self.run is None or self._finished:
            return
        self._finished = True
        error = sys.exc_info()[1] if status == "failed" else None
        if error is not None:  # failed with the traceback recorded (Ctrl-C: interrupted)
            self.run.__exit__(type(error), error, error.__traceback__)
        else:
            self.run.finish(status=_FINALIZE.get(status, "failed"))

    # -- the run ----------------------------------------------------------------------------------------
    def start(self, config: dict[str, Any], default_name: str) -> None:
        import workbench

        self.run = workbench.init(self._name or default_name, config=config, runs_dir=self.runs_dir)
        self._finished = False


class WorkbenchCallback(Callback):
    """The logger's eyes and hands: records the run at set-up, watches at the fit's start, maps stop."""

    def __init__(self, logger: WorkbenchLogger):
        self.logger = logger

    def setup(self, trainer, pl_module, stage: str) -> None:
        # Before ModelCheckpoint's own set-up (Lightning orders checkpoint callbacks last), so its folder
        # can use the run id as the logger's version.
        if stage != "fit" or (self.logger.run is not None and not self.logger._finished):
            return
        hparams = dict(getattr(pl_module, "hparams_initial", {}) or {})
        config = {"trainer": "lightning", "model_class": type(pl_module).__name__,
                  "hparams": {**self.logger._hparams, **hparams}, "lightning": _trainer_settings(trainer)}
        if isinstance(trainer.max_steps, int) and trainer.max_steps > 0:
            config["max_steps"] = trainer.max_steps  # the run's length, for the dashboard's progress
        self.logger.start(config, type(pl_module).__name__)

    def on_train_start(self, trainer, pl_module) -> None:
        run = self.logger.run
        if run is None or not trainer.optimizers:
            return
        configs = trainer.lr_scheduler_configs
        scheduler = configs[0].scheduler if configs else None
        run.watch(pl_module, trainer.optimizers[0], scheduler=scheduler)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        run = self.logger.run
        if run is not None and run.should_stop:
            trainer.should_stop = True
