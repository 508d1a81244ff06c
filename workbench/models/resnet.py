"""Transfer learning with torchvision's ResNet-18: a new head, and two strategies.

- strategy = "head": freeze the backbone (its BatchNorm layers stay in eval mode, so their running
  statistics don't drift either) and train only the head Linear(512, 256) -> ReLU -> Dropout -> Linear.
- strategy = "finetune": train the backbone too (all of it, or only the `unfreeze` stages), with
  per-group learning rates from the preset: the usual fine-tune recipe is unfreeze = ["layer3", "layer4"] and
  optim.group_lr = {layer4 = 1e-4, layer3 = 5e-5, fc = 1e-3}.

pretrained = "imagenet" loads torchvision's ImageNet weights (downloaded once into $TORCH_HOME; offline
that is a clear error); a path loads a saved state_dict; unset, the backbone starts random.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from workbench.data.base import DataInfo
from workbench.errors import ConfigError
from workbench.paths import user_path

STRATEGIES = ("head", "finetune")


class TransferResNet(ResNet):
    """torchvision's ResNet-18 (module names as torchvision's: conv1, layer1..layer4, fc) whose `fc` is the
    new head; grayscale input is repeated to three channels."""

    def __init__(self, strategy: str):
        super().__init__(BasicBlock, [2, 2, 2, 2])
        self.strategy = strategy

    def forward(self, x):
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return super().forward(x)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.strategy == "head":  # a frozen backbone keeps its BatchNorm statistics too
            for name, module in self.named_modules():
                if not name.startswith("fc") and isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self


def _load_weights(pretrained: str | None) -> dict | None:
    """A resnet18 state_dict: torchvision's ImageNet weights, a saved file, or None (random init)."""
    if not pretrained:
        return None
    if pretrained == "imagenet":
        from torchvision.models import ResNet18_Weights

        try:
            return ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
        except Exception as error:  # the download failed (offline) or the cached file is damaged
            raise ConfigError(
                "model.pretrained: could not fetch torchvision's ImageNet resnet18 weights (offline? once "
                "downloaded they are cached in $TORCH_HOME/hub/checkpoints) "
                f"({type(error).__name__}: {(str(error).splitlines() or [''])[0][:160]})"
            ) from None
    path = user_path(pretrained)
    if not path.is_file():
        raise ConfigError(f'model.pretrained: "imagenet" or a saved state_dict file; {pretrained!r} is neither')
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ConfigError(f"model.pretrained: could not load {str(path)!r}: {type(error).__name__}: {error}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a workbench checkpoint
    if not isinstance(state, dict):
        raise ConfigError(f"model.pretrained: {str(path)!r} does not hold a state_dict")
    return state


def build_resnet(
    info: DataInfo,
    pretrained: str | None = None,
    strategy: str = "finetune",
    head_hidden: int = 256,
    dropout: float = 0.5,
    unfreeze: list[str] | None = None,
    num_classes: int | None = None,
) -> TransferResNet:
    """unfreeze (finetune only): backbone stages that train, e.g. ["layer3", "layer4"]; unset = all.
    num_classes fixes the head's width (default: the data's classes)."""
    from workbench.models.mlp import _head_width

    classes = _head_width(num_classes) if num_classes is not None else info.num_classes or 2
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
    stages = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")
    if unfreeze is not None and (strategy != "finetune" or any(s not in stages for s in unfreeze)):
        raise ValueError(f"unfreeze takes backbone stages ({', '.join(stages)}) and only with strategy = \"finetune\"")
    if not info.input_shape or len(info.input_shape) != 3 or info.input_shape[0] not in (1, 3):
        raise ValueError("resnet needs images with 1 or 3 channels")
    if head_hidden < 1 or not 0 <= dropout < 1:
        raise ValueError("head_hidden must be positive and dropout in [0, 1)")
    model = TransferResNet(strategy)
    state = _load_weights(pretrained)
    if state is not None:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # the head is always new
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("fc.")]:
            raise ConfigError(f"model.pretrained: {pretrained!r} is not a resnet18 state_dict "
                              f"({len(missing)} missing, {len(unexpected)} unexpected keys)")
    model.fc = nn.Sequential(nn.Linear(model.fc.in_features, head_hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                             nn.Linear(head_hidden, classes))
    trainable = ("fc",) if strategy == "head" else ("fc", *unfreeze) if unfreeze is not None else None
    if trainable is not None:
        for name, param in model.named_parameters():
            param.requires_grad = name.split(".", 1)[0] in trainable
    return model
