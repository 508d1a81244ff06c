"""Every finding code in one place: its default severity, a short title and the remedy users see.

The remedies follow the practitioner's symptom table (ARCHITECTURES.md): loss explodes -> clip, lower
LR, more weight decay; loss flat -> check LR, normalisation, gradient flow; train low & val high ->
dropout, weight decay, augmentation, smaller model; both high -> bigger model, longer, lower weight
decay, higher LR; oscillating -> lower LR, warmup, check for bad batches. Detectors write the message
(what was seen, with numbers); the remedy comes from here so the same code always gives the same advice.
"""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class FindingSpec:
    """What a finding code means and what to do about it."""

    code: str
    severity: str
    title: str
    remedy: str


_SPECS = [
    FindingSpec(
        "nonfinite_loss", "critical", "loss became NaN/inf",
        "lower the learning rate (optim.lr), enable gradient clipping (train.grad_clip = 1.0), and check the "
        "data and the loss inputs for NaN/inf; roll back to the last good checkpoint to continue",
    ),
    FindingSpec(
        "nonfinite_grad", "critical", "gradients became NaN/inf",
        "guard the named layer's backward (e.g. sqrt/log/division at 0: add an epsilon or clamp), lower the "
        "learning rate and enable gradient clipping (train.grad_clip = 1.0)",
    ),
    FindingSpec(
        "nonfinite_activation", "critical", "a layer produced NaN/inf",
        "fix the named layer's forward (clamp before exp/log, add an epsilon to divisions, normalise its "
        "input), or lower the learning rate if its weights grew too large; check the data for NaN/inf",
    ),
    FindingSpec(
        "nonfinite_input", "critical", "the data contains NaN/inf",
        "clean the dataset (drop or impute NaN/inf values) or fix the transform that produces them",
    ),
    FindingSpec(
        "exploding_gradients", "warning", "gradient norm far above its usual level",
        "enable or lower gradient clipping (train.grad_clip = 1.0), lower the learning rate, add warmup "
        "(schedule.warmup_steps), or more weight decay",
    ),
    FindingSpec(
        "vanishing_gradients", "warning", "early layers get almost no gradient",
        "use ReLU/GELU instead of sigmoid/tanh, add normalisation (LayerNorm/BatchNorm) or residual "
        "connections, use a fan-in-scaled init (Kaiming/Xavier), or a shallower model",
    ),
    FindingSpec(
        "bad_initial_loss", "warning", "the loss at step 0 is far from what an untrained model should give",
        "initialise the output layer smaller (scale its weights down, zero its bias), normalise the inputs, "
        "and check that the loss matches the output (logits, not probabilities)",
    ),
    FindingSpec(
        "loss_plateau", "warning", "the loss stopped improving",
        "check the learning rate (try the LR finder), the data normalisation and the gradient flow (dead "
        "units, vanishing gradients); check the labels match the inputs",
    ),
    FindingSpec(
        "loss_oscillation", "warning", "the loss swings up and down instead of falling",
        "lower the learning rate, add warmup (schedule.warmup_steps), enable gradient clipping, and check "
        "for bad batches (outliers, mislabelled or unnormalised samples)",
    ),
    FindingSpec(
        "overfitting", "warning", "validation loss rising while training loss falls",
        "add dropout or weight decay, augment the data, use a smaller model or more data, or stop early "
        "(train.early_stop_patience)",
    ),
    FindingSpec(
        "underfitting", "warning", "training and validation loss both high and close",
        "use a bigger model, train longer, lower the weight decay or raise the learning rate",
    ),
    FindingSpec(
        "dead_units", "warning", "ReLU units that never activate",
        "lower the learning rate, initialise biases at 0 (or slightly positive) with a Kaiming init, or use "
        "LeakyReLU/GELU; add normalisation before the activation",
    ),
    FindingSpec(
        "lr_too_high", "warning", "the learning rate looks too high",
        "lower the learning rate (try 0.1x, or the LR finder), add warmup, and enable gradient clipping "
        "(train.grad_clip = 1.0)",
    ),
    FindingSpec(
        "lr_too_low", "warning", "the learning rate looks too low",
        "raise the learning rate (try 10x, or run the LR finder: workbench lr-find PRESET)",
    ),
    FindingSpec(
        "loss_on_probabilities", "warning", "the loss gets probabilities where it expects logits",
        "drop the final Softmax/Sigmoid from the model (the named layer): cross_entropy and bce_with_logits apply "
        "it themselves, and on probabilities the loss is squashed and its gradients vanish; apply it only to "
        "read predictions out",
    ),
    FindingSpec(
        "unnormalized_inputs", "warning", "input features on wildly different or large scales",
        "standardise the inputs (subtract each feature's training mean, divide by its std; images: scale to "
        "[0, 1] then normalise per channel), or put a normalisation layer first; `--data` tables are "
        "standardised for you",
    ),
    FindingSpec(
        "val_overlaps_train", "warning", "validation samples also appear in the training set",
        "split into train and validation before augmenting or oversampling, and de-duplicate the data first, "
        "so the validation loss measures new data rather than memorised samples",
    ),
    FindingSpec(
        "saturated_activations", "warning", "tanh/sigmoid inputs sit in the flat tails",
        "initialise the layer feeding it with Xavier/Glorot (nn.init.xavier_uniform_) and zero biases, add "
        "normalisation (LayerNorm/BatchNorm) before the activation, or lower the learning rate; ReLU/GELU do "
        "not saturate",
    ),
    FindingSpec(
        "chance_level", "warning", "validation accuracy at chance",
        "check that the labels match the inputs (the same order and encoding in train and validation), that "
        "the model's output reaches the loss, and the learning rate (try the LR finder); stop this run "
        "rather than wait for it",
    ),
    FindingSpec(
        "out_of_memory", "critical", "out of memory",
        "lower train.batch_size (keep the effective batch with train.grad_accum), use mixed precision "
        "(train.precision = bf16/fp16), or enable activation checkpointing",
    ),
    FindingSpec(
        "disk_full", "critical", "the disk is full",
        "free disk space, then resume the run (TUI: resume key; shell: workbench control RUN_ID resume)",
    ),
    FindingSpec(
        "storage_error", "critical", "the run store or a checkpoint cannot be written",
        "fix the runs dir (permissions, a read-only or failing disk), then resume the run (TUI: resume key; "
        "shell: workbench control RUN_ID resume)",
    ),
    FindingSpec(
        "remote_code_enabled", "warning", "code shipped with the model weights may run",
        "only enable it for model sources you trust; turn it off unless the model needs it",
    ),
    FindingSpec(
        "cpu_contention", "warning", "other processes hold the CPU cores",
        "on the dashboard press t to run on the suggested thread count now; or set train.threads to the cores "
        "left free (train.threads = 1 beside one busy job on 2 cores), or pause the other job: intra-op threads waiting on a busy core spin, so fewer threads can train several times "
        "faster (2-core machine, one busy process beside the run: 1 thread 346 steps/s, 2 threads 92)",
    ),
]

SPECS: dict[str, FindingSpec] = {spec.code: spec for spec in _SPECS}


def remedy(code: str) -> str:
    return SPECS[code].remedy


def finding(code: str, step: int, message: str, evidence: dict | None = None, layer: str | None = None,
            severity: str | None = None) -> dict:
    """A finding dict in the shape `RunSession.report_finding` and the summary expect."""
    spec = SPECS[code]
    severity = severity or spec.severity
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    return {
        "code": code,
        "severity": severity,
        "step": int(step),
        "layer": layer,
        "message": message,
        "remedy": spec.remedy,
        "evidence": dict(evidence or {}),
    }
