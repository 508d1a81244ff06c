"""A user's own training loop on the public API (`workbench.init`), run as a separate program.

`start_loop(runs_dir)` starts it in a subprocess that trains until the run says stop (or `max_steps`)
and prints the run id on its first line, so tests can steer it from outside like a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LOOP = '''
import sys
import torch
from torch import nn
import workbench

torch.manual_seed(0)
torch.set_num_threads(1)
runs_dir, max_steps = sys.argv[1], int(sys.argv[2])
x = torch.randn(4096, 2)
y = (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0).long()
model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100000)
with workbench.init("own-loop", config={"lr": 0.05, "hidden": 32}, runs_dir=runs_dir) as run:
    run.watch(model, optimizer, scheduler)
    print(run.id, flush=True)
    for step in range(max_steps):
        batch = torch.randint(0, 4096, (64,))
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        run.log({"loss": loss}, step=step)
        if run.should_stop:
            break
print(run.status, run.step, flush=True)
'''


def start_loop(runs_dir: Path, max_steps: int = 10_000_000) -> tuple[subprocess.Popen, str]:
    """The loop in another process and its run id (read from its first line of output)."""
    script = Path(runs_dir).parent / "own_loop.py"
    script.write_text(LOOP)
    process = subprocess.Popen([sys.executable, str(script), str(runs_dir), str(max_steps)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    run_id = process.stdout.readline().strip()
    if not run_id:
        process.kill()
        raise AssertionError(f"the loop did not start: {process.stderr.read()}")
    return process, run_id


DISTRIBUTED_LOOP = '''
import sys
import torch
import torch.distributed as dist
from torch import nn
import workbench

torch.set_num_threads(1)
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(rank)
x = torch.randn(1024, 2)
y = (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0).long()
model = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 4)))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
run = workbench.init("own-ddp", config={"lr": 0.1}, runs_dir=sys.argv[1])
run.watch(model, optimizer)
for step in range(1000):
    if rank == 0 and step == 30:
        run.session.control.set_lr(0.02)  # what `workbench control RUN set-lr 0.02` queues on rank 0
    if rank == 0 and step == 120:
        run.session.control.stop()
    batch = torch.randint(0, 1024, (32,))
    loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    run.log({"loss": loss}, step=step)
    if run.should_stop:
        break
print(f"rank {rank} stopped-after {step} lr {optimizer.param_groups[0]['lr']} id {run.id}", flush=True)
run.finish()
dist.destroy_process_group()
'''


# Each rank logs its own loss (1 + rank + step/100); with "unaligned", rank 1 logs a note instead of its
# loss at step 10, so the first window's losses number 50 on rank 0 and 49 on rank 1.
DISTRIBUTED_LOSSES = '''
import sys
import torch.distributed as dist
import workbench

dist.init_process_group("gloo")
rank = dist.get_rank()
run = workbench.init("own-ddp-losses", runs_dir=sys.argv[1])
for step in range(100):
    if sys.argv[2] == "unaligned" and rank == 1 and step == 10:
        run.log({"note": 1.0}, step=step)
    else:
        run.log({"loss": 1.0 + rank + step / 100}, step=step)
run.finish()
print("rank", rank, run.id, flush=True)
'''
