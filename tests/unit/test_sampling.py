"""Text samples from peft prompt-tuned models: generation must stay inside the model's positions."""

from __future__ import annotations

import torch

from workbench.builders import build_data, build_model
from workbench.models.sampling import generate_sample
from workbench.presets import load_preset


def test_prompt_tuning_samples_up_to_the_position_budget():
    # base_steps=0: a random base is enough to sample from (no pre-training in a unit test)
    preset = load_preset("hf-prompt-tuning", ["model.args.base_steps=0"])
    data = build_data(preset)
    model = build_model(preset, data.info)
    positions = model.get_base_model().config.n_positions  # block_size + the virtual tokens
    budget = positions - preset.model.args["num_virtual_tokens"]
    state = torch.get_rng_state()
    text = generate_sample(model, data.info, seed=0)
    assert torch.equal(torch.get_rng_state(), state)  # sampling leaves the training RNG stream alone
    assert text is not None and len(data.info.encode(text)) == budget  # half the budget prompt, half new
    assert generate_sample(model, data.info, seed=0) == text  # seeded: the same sample twice
