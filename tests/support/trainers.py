"""Other trainers on tiny offline models, for the integration tests: the Hugging Face Trainer on a 2-layer
BERT built from config, and Lightning on a small MLP. Data is generated; nothing comes from a hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SEQ = 12


# -- Hugging Face ------------------------------------------------------------------------------------------
def token_data(n: int, seed: int) -> list[dict[str, Any]]:
    """Token sequences drawn from the lower (label 0) or upper (label 1) half of the vocabulary, with a
    few tokens from the other half as noise: learnable in a few dozen steps."""
    import torch

    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    ids = torch.randint(5, 34, (n, SEQ), generator=g) + 29 * labels[:, None]
    noise = torch.rand(n, SEQ, generator=g) < 0.2
    ids = torch.where(noise, torch.randint(5, 63, (n, SEQ), generator=g), ids)
    ids[:, 0] = 2  # a [CLS]-like first token
    mask = torch.ones(SEQ, dtype=torch.long)
    return [{"input_ids": ids[i], "attention_mask": mask, "labels": labels[i]} for i in range(n)]


def tiny_bert():
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=2)
    return BertForSequenceClassification(config)


def _accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


def hf_trainer(folder: Path, callbacks: list, **overrides):
    """A HF Trainer on the tiny BERT: 40 steps, logs every 5, eval every 20 (overrides: TrainingArguments)."""
    import torch
    from transformers import Trainer, TrainingArguments

    torch.set_num_threads(1)
    settings = dict(output_dir=str(Path(folder) / "hf-out"), max_steps=40, per_device_train_batch_size=16,
                    per_device_eval_batch_size=64, learning_rate=2e-3, logging_steps=5, eval_strategy="steps",
                    eval_steps=20, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
                    dataloader_num_workers=0, seed=0)
    settings.update(overrides)
    return Trainer(model=tiny_bert(), args=TrainingArguments(**settings), train_dataset=token_data(512, 0),
                   eval_dataset=token_data(128, 1), compute_metrics=_accuracy, callbacks=callbacks)


# -- Lightning ---------------------------------------------------------------------------------------------
def lightning():
    """`lightning.pytorch` where installed, else `pytorch_lightning` (the integration's own rule)."""
    try:
        import lightning.pytorch as pl
    except ImportError:
        import pytorch_lightning as pl
    return pl


def quadrant_loaders(batch_size: int = 32):
    """Points in the plane labelled by quadrant: (train loader, val loader)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    def make(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 2, generator=g)
        y = (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0).long()
        return TensorDataset(x, y)

    return (DataLoader(make(1024, 0), batch_size=batch_size, shuffle=True),
            DataLoader(make(256, 1), batch_size=128))


def quadrant_classifier(fail_at_step: int | None = None):
    """A LightningModule (2-32-4 MLP, SGD + StepLR) logging train_loss, val_loss and val_acc."""
    import torch
    from torch import nn

    pl = lightning()

    class QuadrantClassifier(pl.LightningModule):
        def __init__(self, hidden: int = 32, lr: float = 0.05):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 4))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            if fail_at_step is not None and self.global_step == fail_at_step:
                raise RuntimeError("boom in training_step")
            x, y = batch
            loss = nn.functional.cross_entropy(self(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            logits = self(x)
            self.log("val_loss", nn.functional.cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(-1) == y).float().mean())

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)
            return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1000)}

    torch.manual_seed(0)
    return QuadrantClassifier()


def lightning_fit(folder: Path, logger, model, **overrides):
    """Fit `model` on the quadrants with `logger` and its callback: 64 steps, val every 32 (overrides: Trainer)."""
    import torch

    torch.set_num_threads(1)
    settings = dict(max_steps=64, val_check_interval=32, log_every_n_steps=4, accelerator="cpu", devices=1,
                    enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                    default_root_dir=str(Path(folder) / "pl"), logger=logger, callbacks=[logger.callback])
    settings.update(overrides)
    trainer = lightning().Trainer(**settings)
    train, val = quadrant_loaders()
    trainer.fit(model, train, val)
    return trainer
