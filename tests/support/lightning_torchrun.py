"""A Lightning fit with WorkbenchLogger under torchrun (CPU, gloo, strategy ddp), for the distributed test:

    python -m torch.distributed.run --nproc_per_node=2 tests/support/lightning_torchrun.py OUT_DIR MAX_STEPS

Each rank prints one JSON line: its rank, the step it ended at and the run id."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests folder, for `support`

from support.trainers import lightning_fit, quadrant_classifier  # noqa: E402
from workbench.integrations.lightning import WorkbenchLogger  # noqa: E402


def main() -> None:
    out, max_steps = Path(sys.argv[1]), int(sys.argv[2])
    logger = WorkbenchLogger(name="pl-ddp")
    trainer = lightning_fit(out, logger, quadrant_classifier(), max_steps=max_steps, max_epochs=-1, devices=2,
                            strategy="ddp", val_check_interval=None, check_val_every_n_epoch=1000)
    print(json.dumps({"rank": int(os.environ.get("RANK", 0)), "step": trainer.global_step,
                      "run_id": logger.run.id if logger.run is not None else None}), flush=True)


if __name__ == "__main__":
    main()
