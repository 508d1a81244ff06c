"""Text samples from language models at eval time (our GPT's generate, or Hugging Face's, peft included)."""

from __future__ import annotations

import warnings

import torch

from workbench.data.base import DataInfo


def is_hf_model(model) -> bool:
    """A transformers model, or a peft model wrapping one (both generate through Hugging Face's generate)."""
    config = getattr(model, "config", None)
    return hasattr(model, "peft_config") or (config is not None and hasattr(config, "model_type"))


def _hf_position_budget(model) -> int | None:
    """Positions left for prompt + new tokens: the model's limit minus any virtual tokens peft prepends."""
    config = getattr(model, "config", None)
    limit = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    if not limit:
        return None
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict):
        for adapter in peft_config.values():
            limit -= int(getattr(adapter, "num_virtual_tokens", 0) or 0)
    return limit


def _is_prompt_learning(model) -> bool:
    """peft prompt/prefix tuning: virtual tokens are prepended inside the model's forward."""
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


def _sample_by_forward(model, idx: torch.Tensor, max_new_tokens: int, temperature: float, top_k: int) -> torch.Tensor:
    """Sample token by token through the model's own forward, with no KV cache.

    peft's generate for prompt learning re-injects the virtual tokens on every decoding step when it does
    not recognise transformers' cache arguments (peft 0.21 with transformers 5.2x: the positions run past
    the model's limit, "IndexError: index out of range in self"). The forward is the path training uses,
    so it is right on every version; without a cache it costs O(n^2), nothing at these sample lengths.
    """
    for _ in range(max_new_tokens):
        logits = model(input_ids=idx, attention_mask=torch.ones_like(idx)).logits[:, -1, :]
        logits = logits.float() / max(temperature, 1e-5)
        if top_k:
            kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1, None]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        idx = torch.cat([idx, torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1)], dim=1)
    return idx


@torch.no_grad()
def generate_sample(model, info: DataInfo, seed: int, max_new_tokens: int = 120, temperature: float = 0.8,
                    top_k: int = 40) -> str | None:
    """The data's prompt and a short sampled continuation, or None when the model or data can't produce one."""
    if info.encode is None or info.decode is None or not hasattr(model, "generate"):
        return None
    prompt = info.extra.get("prompt", "\n")
    ids = info.encode(prompt) or [info.pad_id or 0]
    device = next(model.parameters()).device
    hf = is_hf_model(model)
    if hf:
        budget = _hf_position_budget(model)
        if budget is not None:
            ids = ids[-max(1, budget // 2):]
            max_new_tokens = min(max_new_tokens, budget - len(ids))
        if max_new_tokens < 1:
            return None
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    generator_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    torch.manual_seed(seed)
    try:
        if hf and _is_prompt_learning(model):
            with warnings.catch_warnings():  # peft: "position ids are not supported ... ignoring"
                warnings.simplefilter("ignore")
                out = _sample_by_forward(model, idx, max_new_tokens, temperature, top_k)
        elif hf:
            with warnings.catch_warnings():  # peft and transformers chatter about position ids and masks
                warnings.simplefilter("ignore")
                out = model.generate(input_ids=idx, attention_mask=torch.ones_like(idx), max_new_tokens=max_new_tokens,
                                     do_sample=True, temperature=temperature, top_k=top_k,
                                     pad_token_id=info.pad_id if info.pad_id is not None else 0)
        else:
            out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k)
    finally:
        torch.set_rng_state(generator_state)  # sampling must not shift the training RNG stream
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        model.train(was_training)
    return info.decode(out[0].tolist())
