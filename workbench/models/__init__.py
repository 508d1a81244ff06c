"""Model builders: fn(info: DataInfo, **args) -> torch.nn.Module (see workbench.registry)."""
