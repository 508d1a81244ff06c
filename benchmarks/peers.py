"""The trainers a user would pick instead of ours, on the same model, data, optimizer and schedule.

PyTorch Lightning (CSV logger, progress bar off, its default logging cadence; the loss logged every
step as a user would) and the Hugging Face Trainer (HF presets: the model computes its own loss).
Each returns (wall, CPU) seconds of its training loop alone, from its train-start hook to its
train-end hook, as the bare loop and our loop clock are timed.
"""

from __future__ import annotations

import tempfile
import time

import torch
from torch.utils.data import DataLoader, default_collate

from workbench.builders import build_data, build_model
from workbench.training.batches import split_batch
from workbench.training.trainer import seed_everything
from workbench.training.losses import build_loss
from workbench.training.optim import build_optimizer, build_scheduler


def is_hf_preset(preset) -> bool:
    """Presets whose model is a transformers model computing its own loss: the HF Trainer's home ground."""
    return preset.model.kind.startswith("hf_") and preset.train.loss == "model"


def default_peer(preset) -> str:
    return "hf_trainer" if is_hf_preset(preset) else "lightning"


class _Span:
    """Wall and process CPU seconds between start() and stop()."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def lightning_seconds(preset, steps: int, device: torch.device) -> tuple[float, float]:
    """`pytorch_lightning.Trainer.fit` on the preset's model, data, optimizer, schedule and clipping."""
    import logging

    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    seed_everything(preset.train.seed)
    data = build_data(preset)
    model = build_model(preset, data.info)
    loss_fn = build_loss(preset.train)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = model

        def training_step(self, batch, index):
            x, y = split_batch(batch)
            if loss_fn is None:
                output = self.model(**x, labels=y) if isinstance(x, dict) else self.model(x, labels=y)
                loss = output["loss"]
            else:
                output = self.model(**x) if isinstance(x, dict) else self.model(x)
                loss = loss_fn(getattr(output, "logits", output), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            optimizer = build_optimizer(self.model, preset.optim)
            scheduler = build_scheduler(optimizer, preset.schedule, preset.train.max_steps)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    span = _Span()

    class Clock(pl.Callback):
        def on_train_start(self, trainer, module):
            span.start()

        def on_train_end(self, trainer, module):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            span.stop()

    loader = DataLoader(data.train, batch_size=preset.train.batch_size, shuffle=True, drop_last=True,
                        collate_fn=data.info.collate)
    precision = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}[preset.train.precision]
    with tempfile.TemporaryDirectory() as logs:
        trainer = pl.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, max_steps=steps,
            logger=CSVLogger(logs), enable_progress_bar=False, enable_model_summary=False,
            enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0, precision=precision,
            gradient_clip_val=preset.train.grad_clip or None, callbacks=[Clock()], default_root_dir=logs,
        )
        trainer.fit(Module(), train_dataloaders=loader)
    return span.wall, span.cpu


def hf_trainer_seconds(preset, steps: int, device: torch.device) -> tuple[float, float]:
    """`transformers.Trainer.train` on the preset's model and data, with our optimizer and schedule."""
    import transformers
    from transformers import Trainer, TrainerCallback, TrainingArguments

    transformers.logging.set_verbosity_error()
    seed_everything(preset.train.seed)
    data = build_data(preset)
    model = build_model(preset, data.info)
    optimizer = build_optimizer(model, preset.optim)
    scheduler = build_scheduler(optimizer, preset.schedule, preset.train.max_steps)
    collate = data.info.collate or default_collate
    span = _Span()

    def collator(items):  # our batches are (inputs, labels); the HF Trainer wants one dict with labels
        x, y = split_batch(collate(items))
        return {**x, "labels": y}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            span.start()

        def on_train_end(self, args, state, control, **kwargs):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            span.stop()

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=preset.train.batch_size,
            gradient_accumulation_steps=preset.train.grad_accum, max_grad_norm=preset.train.grad_clip,
            save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
            use_cpu=device.type != "cuda", dataloader_drop_last=True, seed=preset.train.seed,
            bf16=preset.train.precision == "bf16", fp16=preset.train.precision == "fp16",
        )
        trainer = Trainer(model=model, args=args, train_dataset=data.train, data_collator=collator,
                          optimizers=(optimizer, scheduler), callbacks=[Clock()])
        trainer.train()
    return span.wall, span.cpu


PEERS = {"lightning": lightning_seconds, "hf_trainer": hf_trainer_seconds}
