"""A HF Trainer run with WorkbenchCallback under torchrun (CPU, gloo), for the distributed test:

    python -m torch.distributed.run --nproc_per_node=2 tests/support/hf_torchrun.py OUT_DIR MAX_STEPS

Each rank prints one JSON line: its rank, the step it ended at, the run id and the lr it ended with."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests folder, for `support`

from support.trainers import hf_trainer  # noqa: E402
from workbench.integrations.transformers import WorkbenchCallback  # noqa: E402


def main() -> None:
    out, max_steps = Path(sys.argv[1]), int(sys.argv[2])
    callback = WorkbenchCallback(name="hf-ddp")
    # Under torchrun the run flushes (and hears stop / set-lr) every 25 logs or 100 optimizer steps: a log
    # each step keeps the test's waits short.
    trainer = hf_trainer(out, [callback], max_steps=max_steps, eval_strategy="no", logging_steps=1,
                         lr_scheduler_type="constant")
    trainer.train()
    print(json.dumps({"rank": int(os.environ.get("RANK", 0)), "step": trainer.state.global_step,
                      "run_id": callback.run.id if callback.run is not None else None,
                      "lr": trainer.optimizer.param_groups[0]["lr"]}), flush=True)


if __name__ == "__main__":
    main()
