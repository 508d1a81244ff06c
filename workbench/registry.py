"""Names of the built-in model and data kinds, mapped to where their builders live.

A static table (not import-time registration) so that validating a preset or listing presets never
imports torch. Builders are imported only when a run is set up.

Model builder:  fn(info: DataInfo, **args) -> torch.nn.Module
Data builder:   fn(seed: int, **args) -> DataBundle
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

MODELS: dict[str, str] = {
    "mlp": "workbench.models.mlp:build_mlp",
    "cnn": "workbench.models.cnn:build_small_cnn",
    "resnet": "workbench.models.resnet:build_resnet",
    "rnn": "workbench.models.recurrent:build_vanilla_rnn",
    "lstm": "workbench.models.recurrent:build_lstm_classifier",
    "gru": "workbench.models.recurrent:build_gru_classifier",
    "lstm_forecaster": "workbench.models.recurrent:build_lstm_forecaster",
    "seq2seq": "workbench.models.seq2seq:build_seq2seq",
    "gpt": "workbench.models.gpt:build_gpt",
    "transformer_classifier": "workbench.models.transformer:build_transformer_classifier",
    "hf_sequence_classifier": "workbench.models.hf:build_hf_sequence_classifier",
    "hf_causal_lm": "workbench.models.hf:build_hf_causal_lm",
    "hf_lora": "workbench.models.hf:build_hf_lora",
    "hf_prompt_tuning": "workbench.models.hf:build_hf_prompt_tuning",
}

DATASETS: dict[str, str] = {
    "quadrants": "workbench.data.synthetic:quadrants",
    "tabular_binary": "workbench.data.synthetic:tabular_binary",
    "shapes": "workbench.data.shapes:shapes",
    "sequence_task": "workbench.data.sequences:sequence_task",
    "time_series": "workbench.data.sequences:time_series",
    "reverse_tokens": "workbench.data.sequences:reverse_tokens",
    "stdlib_chars": "workbench.data.text:stdlib_chars",
    "stdlib_lines": "workbench.data.text:stdlib_lines",
    "torchvision": "workbench.data.real:torchvision_dataset",
    "hf": "workbench.data.real:hf_dataset",
    "text_file": "workbench.data.real:text_file",
    "image_folder": "workbench.data.real:image_folder",
    "table": "workbench.data.tables:table",
    "images": "workbench.data.hub_images:images",
}


def resolve(table: dict[str, str], kind: str) -> Callable[..., Any]:
    """Import and return the builder for a built-in kind."""
    module_name, _, attr = table[kind].partition(":")
    return getattr(importlib.import_module(module_name), attr)
