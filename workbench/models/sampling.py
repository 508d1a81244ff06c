"""Text samples from language models at eval time (our GPT's generate, or Hugging Face's)."""

from __future__ import annotations

import torch

from workbench.data.base import DataInfo


@torch.no_grad()
def generate_sample(model, info: DataInfo, seed: int, max_new_tokens: int = 120, temperature: float = 0.8,
                    top_k: int = 40) -> str | None:
    """A short continuation of the data's prompt, or None when the model or data can't produce one."""
    if info.encode is None or info.decode is None or not hasattr(model, "generate"):
        return None
    prompt = info.extra.get("prompt", "\n")
    ids = info.encode(prompt) or [0]
    device = next(model.parameters()).device
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        if hasattr(model, "config") and hasattr(model.config, "model_type"):  # a Hugging Face model
            out = model.generate(input_ids=idx, attention_mask=torch.ones_like(idx), max_new_tokens=max_new_tokens,
                                 do_sample=True, temperature=temperature, top_k=top_k,
                                 pad_token_id=info.pad_id if info.pad_id is not None else 0)
        else:
            out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k)
    finally:
        torch.set_rng_state(generator_state)  # sampling must not shift the training RNG stream
        model.train(was_training)
    return info.decode(out[0, len(ids):].tolist())
