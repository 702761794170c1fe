"""Process-group detection so `torchrun` and `accelerate launch` work without code changes.

Both launchers export RANK, WORLD_SIZE and LOCAL_RANK (plus MASTER_ADDR/PORT); when WORLD_SIZE > 1
we join the default process group (nccl on CUDA, gloo on CPU) and wrap the loss module in DDP.
Every rank builds the same deterministic batch plan and takes micro-batches `rank, rank+W, ...`
of each step, so no distributed sampler is needed and resume needs only the step number.

    torchrun --nproc-per-node 8 -m llmfti finetune --config configs/finetune/NAME.yaml
    accelerate launch --num_processes 8 -m llmfti finetune --config configs/finetune/NAME.yaml
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device_type: str) -> Dist:
    """Join the process group when launched by torchrun/accelerate; a no-op for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def wrap(module, d: Dist, device):
    if not d.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(module, device_ids=ids)


def all_sum(values: list[float], d: Dist, device) -> list[float]:
    """Sum scalars over ranks (one collective for the list)."""
    if not d.enabled:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(d: Dist) -> None:
    if d.enabled:
        import torch.distributed as dist

        dist.barrier()


def teardown(d: Dist) -> None:
    if d.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
