"""Hugging Face models: BERT sequence classification, a GPT-2 causal LM, and peft LoRA / prompt tuning on it.

Built from a small config by default (no network); `model.pretrained = "<hub id or local dir>"` loads
weights with from_pretrained instead, and a load that can't be found or fetched is a one-line config
error. `model.pretrained = "<file>.pt"` (a workbench checkpoint, e.g. runs/RUN/checkpoints/best.pt of
hf-gpt2-lm) builds the model from the same config args and loads those weights: the offline way to give
LoRA or prompt tuning a trained base. `trust_remote_code` stays off unless the preset turns it on. These models take dict batches
(input_ids, attention_mask) with labels, so their data needs `format = "hf"`; the engine reads the
model's own `.loss` when `train.loss = "model"`.

transformers and peft are imported inside the builders: listing or validating presets never pays for them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from workbench.data.base import DataInfo
from workbench.errors import ConfigError
from workbench.paths import user_path


def _require_hf_format(info: DataInfo) -> None:
    if info.extra.get("format") != "hf":
        raise ValueError('Hugging Face models take dict batches: set data.args.format = "hf" (text data)')
    if not info.vocab_size:
        raise ValueError("Hugging Face text models need token data (vocab_size)")


def from_pretrained(loader, spec: str, trust_remote_code: bool, **kwargs: Any):
    """loader.from_pretrained(spec), with every way it can fail turned into one clear line."""
    try:
        return loader.from_pretrained(spec, trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        if user_path(spec).exists():
            why = f"the local directory {spec!r} holds no loadable model ({type(error).__name__}: {detail})"
        else:
            why = (f"{spec!r} is not a local directory and could not be fetched from the Hugging Face hub "
                   f"(offline? pass a local directory saved with save_pretrained) ({type(error).__name__}: {detail})")
        raise ConfigError(f"model.pretrained: {why}") from None


def is_checkpoint_file(spec: str | None) -> bool:
    return bool(spec) and user_path(spec).is_file()


def load_checkpoint_weights(model, spec: str) -> None:
    """Load a workbench checkpoint (or a bare state_dict) into a model built from the same config."""
    import torch

    path = user_path(spec)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(f"model.pretrained: could not load {str(path)!r}: {type(error).__name__}: {error}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ConfigError(f"model.pretrained: {str(path)!r} does not hold a state_dict")
    state = {key.replace("base_model.model.", "", 1): value for key, value in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = (str(error).strip().splitlines() or [""])[0]
        raise ConfigError(f"model.pretrained: {str(path)!r} does not fit this model ({first[:160]}); build it with "
                          "the model.args and data it was trained with") from None


def _check_vocab(info: DataInfo, model, spec: str) -> None:
    """Token ids from the data must exist in a pretrained model's embedding table, and mean the same thing."""
    model_vocab = model.get_input_embeddings().weight.shape[0]
    tokenizer = info.extra.get("tokenizer")
    if info.vocab_size > model_vocab:
        raise ConfigError(f"model.pretrained: the data has {info.vocab_size} token ids but {spec!r} knows "
                          f"{model_vocab}; tokenize with its tokenizer: data.args.tokenizer = {spec!r}")
    if tokenizer != spec and info.vocab_size != model_vocab:
        raise ConfigError(f"model.pretrained: the data was tokenized with {tokenizer!r}, whose ids mean nothing to "
                          f"{spec!r}; set data.args.tokenizer = {spec!r}")


def _checkpointing(model, enabled: bool) -> None:
    """Activation (gradient) checkpointing: recompute activations in backward instead of storing them."""
    if enabled:
        options = {"use_reentrant": False}  # reentrant checkpointing loses gradients of frozen-input adapters
        if hasattr(model, "activation_checkpointing_enable"):  # transformers 5 renamed it
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)
        if hasattr(model.config, "use_cache"):
            model.config.use_cache = False


def build_hf_sequence_classifier(
    info: DataInfo,
    pretrained: str | None = None,
    trust_remote_code: bool = False,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 512,
    dropout: float = 0.1,
    gradient_checkpointing: bool = False,
):
    """BertForSequenceClassification from a small BertConfig, or AutoModelForSequenceClassification
    from `pretrained` with a new classification head sized to the data's classes."""
    _require_hf_format(info)
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by num_heads ({num_heads})")
    if min(hidden_size, num_layers, num_heads, intermediate_size) < 1:
        raise ValueError("hidden_size, num_layers, num_heads and intermediate_size must be positive")
    if not 0 <= dropout < 1:
        raise ValueError("dropout must be in [0, 1)")
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    num_labels = info.num_classes or 2
    if pretrained and not is_checkpoint_file(pretrained):
        model = from_pretrained(AutoModelForSequenceClassification, pretrained, trust_remote_code,
                                num_labels=num_labels, ignore_mismatched_sizes=True)
        _check_vocab(info, model, pretrained)
    else:
        config = BertConfig(
            vocab_size=info.vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
            num_attention_heads=num_heads, intermediate_size=intermediate_size, hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout, max_position_embeddings=max(64, info.seq_len or 0),
            num_labels=num_labels, pad_token_id=info.pad_id if info.pad_id is not None else 0,
        )
        model = BertForSequenceClassification(config)
        if pretrained:
            load_checkpoint_weights(model, pretrained)
    if info.seq_len and info.seq_len > getattr(model.config, "max_position_embeddings", info.seq_len):
        raise ConfigError(f"data.args.seq_len: {info.seq_len} is longer than the model's "
                          f"{model.config.max_position_embeddings} positions")
    _checkpointing(model, gradient_checkpointing)
    return model


def build_hf_causal_lm(
    info: DataInfo,
    pretrained: str | None = None,
    trust_remote_code: bool = False,
    n_layer: int = 2,
    n_head: int = 4,
    n_embd: int = 128,
    dropout: float = 0.1,
    gradient_checkpointing: bool = False,
    extra_positions: int = 0,
):
    """GPT2LMHeadModel from a tiny GPT2Config (vocab from the data), or AutoModelForCausalLM from `pretrained`.

    extra_positions: room beyond the data's sequence length (prompt tuning prepends virtual tokens).
    """
    _require_hf_format(info)
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
    if min(n_layer, n_head, n_embd) < 1:
        raise ValueError("n_layer, n_head and n_embd must be positive")
    if not 0 <= dropout < 1:
        raise ValueError("dropout must be in [0, 1)")
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    positions = (info.seq_len or 128) + extra_positions
    if pretrained and not is_checkpoint_file(pretrained):
        model = from_pretrained(AutoModelForCausalLM, pretrained, trust_remote_code)
        _check_vocab(info, model, pretrained)
        limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
        if limit and positions > limit:
            raise ConfigError(f"data.args.block_size: {positions} positions needed, {pretrained!r} has {limit}")
    else:
        pad = info.pad_id if info.pad_id is not None else 0
        config = GPT2Config(
            vocab_size=info.vocab_size, n_positions=positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
            resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
            bos_token_id=pad, eos_token_id=pad, pad_token_id=pad,
        )
        model = GPT2LMHeadModel(config)
        # no end-of-text token in a character vocabulary: generation runs to max_new_tokens
        model.generation_config.eos_token_id = None
        model.generation_config.bos_token_id = None
        model.generation_config.pad_token_id = pad
        if pretrained:
            load_checkpoint_weights(model, pretrained)
    if getattr(model, "loss_type", None) is None:
        model.loss_type = "ForCausalLM"  # what transformers falls back to anyway, without the warning
    _checkpointing(model, gradient_checkpointing)
    return model


def _wrap(base, config):
    """get_peft_model, minus a deprecation warning peft triggers inside transformers."""
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(base, config)


def _peft_error(error: Exception, key: str) -> ConfigError:
    return ConfigError(f"{key}: {(str(error).strip().splitlines() or [''])[0][:300]}")


def build_hf_lora(
    info: DataInfo,
    pretrained: str | None = None,
    trust_remote_code: bool = False,
    r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.1,
    target_modules: list[str] | None = None,
    modules_to_save: list[str] | None = None,
    n_layer: int = 2,
    n_head: int = 4,
    n_embd: int = 128,
    dropout: float = 0.1,
    gradient_checkpointing: bool = False,
):
    """The causal LM with a peft LoRA adapter (LoraConfig(r, lora_alpha, lora_dropout, target_modules));
    only the adapter's low-rank matrices train, plus full copies of any `modules_to_save` (e.g. ["ln_f"])."""
    if r < 1 or lora_alpha <= 0:
        raise ValueError("r must be >= 1 and lora_alpha > 0")
    if not 0 <= lora_dropout < 1:
        raise ValueError("lora_dropout must be in [0, 1)")
    base = build_hf_causal_lm(info, pretrained, trust_remote_code, n_layer, n_head, n_embd, dropout,
                              gradient_checkpointing)
    from peft import LoraConfig, TaskType

    targets = list(target_modules) if target_modules else ["c_attn"]
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                        target_modules=targets, modules_to_save=list(modules_to_save) if modules_to_save else None,
                        fan_in_fan_out=base.config.model_type == "gpt2")
    if gradient_checkpointing:
        base.enable_input_require_grads()
    try:
        return _wrap(base, config)
    except (ValueError, TypeError) as error:
        names = sorted({name.rsplit(".", 1)[-1] for name, _ in base.named_modules() if name})
        raise ConfigError(f"model.args.target_modules: {targets} ({_peft_error(error, 'peft')}); module names in "
                          f"this model include: {', '.join(names[:25])}") from None


def _pretrain_base(model, info: DataInfo, steps: int) -> None:
    """Train a randomly built causal LM for `steps` steps on the train part of the stdlib source (never its
    val text), with hf-gpt2-lm's recipe (AdamW, warmup then cosine decay), on windows as long as the model's
    positions. A stand-in for a downloaded checkpoint: cached under $XDG_CACHE_HOME/workbench/bases by
    everything that decides the weights, so only the first run pays for it."""
    import hashlib
    import os

    import torch

    from workbench.data.text import stdlib_train_text
    from workbench.data.vocab import cache_dir
    from workbench.notices import notice

    if info.encode is None:
        raise ConfigError("model.args.base_steps: the data has no tokenizer to encode the base's pre-training text")
    ids = torch.tensor(info.encode(stdlib_train_text()), dtype=torch.long)
    length = model.config.n_positions
    if ids.numel() < 10 * length:
        raise ConfigError(f"model.args.base_steps: this tokenizer keeps only {ids.numel()} tokens of the stdlib "
                          f"source, too few to pre-train a base on")
    key = hashlib.sha256(model.config.to_json_string().encode() + ids.numpy().tobytes() + f"{steps}:recipe2".encode())
    path = cache_dir().parent / "bases" / f"gpt2-{steps}-{key.hexdigest()[:24]}.pt"
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception:  # a damaged cache entry: drop it and train again
            path.unlink(missing_ok=True)
        else:
            notice(f"prompt-tuning base: loaded the pre-trained GPT-2 from {path}")
            return
    notice(f"prompt-tuning base: pre-training a GPT-2 for {steps} steps on the stdlib source before freezing it "
           f"(once: cached in {path.parent} for later runs)")
    from workbench.config import OptimConfig, ScheduleConfig
    from workbench.training.optim import build_optimizer, build_scheduler

    generator = torch.Generator().manual_seed(0)
    # The trainer's own optimizer and schedule builders, with hf-gpt2-lm's settings.
    optimizer = build_optimizer(model, OptimConfig(name="adamw", lr=2e-3, betas=(0.9, 0.95), weight_decay=0.1))
    scheduler = build_scheduler(optimizer, ScheduleConfig(name="warmup_cosine", warmup_steps=max(1, steps // 10),
                                                          min_lr_ratio=0.1), steps)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, ids.numel() - length, (32,), generator=generator)
        batch = torch.stack([ids[i : i + length] for i in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(model.state_dict(), partial)
        os.replace(partial, path)
    except OSError:  # an unwritable cache only costs pre-training again next time
        return


def build_hf_prompt_tuning(
    info: DataInfo,
    pretrained: str | None = None,
    trust_remote_code: bool = False,
    num_virtual_tokens: int = 16,
    init: str = "sample_vocab",
    base_steps: int = 0,
    n_layer: int = 2,
    n_head: int = 4,
    n_embd: int = 128,
    dropout: float = 0.1,
    gradient_checkpointing: bool = False,
):
    """peft prompt tuning: `num_virtual_tokens` learned embeddings prepended to every input of a frozen
    causal LM. init: "sample_vocab" (start from random rows of the vocabulary) or "random".

    base_steps: with no `model.pretrained`, first pre-train the GPT-2 built here for this many steps on the
    stdlib source (cached; 0 = leave the base random, and a prompt cannot steer a random model). The base
    is the same for every run seed, like a downloaded checkpoint; with `model.pretrained` it is unused.
    """
    if not 1 <= num_virtual_tokens <= 512:
        raise ConfigError(f"model.args.num_virtual_tokens: {num_virtual_tokens} is not between 1 and 512")
    if init not in ("sample_vocab", "random"):
        raise ConfigError(f"model.args.init: {init!r} is not 'sample_vocab' or 'random'")
    if isinstance(base_steps, bool) or not isinstance(base_steps, int) or not 0 <= base_steps <= 100_000:
        raise ConfigError(f"model.args.base_steps: {base_steps!r} is not a whole number from 0 to 100000")
    if base_steps and not pretrained:
        import torch

        with torch.random.fork_rng():
            torch.manual_seed(0)  # a fixed base for every run seed; the run's RNG stream is left as it was
            base = build_hf_causal_lm(info, None, trust_remote_code, n_layer, n_head, n_embd, dropout,
                                      gradient_checkpointing, extra_positions=num_virtual_tokens)
            _pretrain_base(base, info, base_steps)
    else:
        base = build_hf_causal_lm(info, pretrained, trust_remote_code, n_layer, n_head, n_embd, dropout,
                                  gradient_checkpointing, extra_positions=num_virtual_tokens)
    from peft import PromptTuningConfig, PromptTuningInit, TaskType

    config = PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM, num_virtual_tokens=num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit.SAMPLE_VOCAB if init == "sample_vocab" else PromptTuningInit.RANDOM,
    )
    if gradient_checkpointing:
        base.enable_input_require_grads()
    try:
        return _wrap(base, config)
    except (ValueError, TypeError) as error:
        raise _peft_error(error, "model.args") from None
