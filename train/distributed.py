"""Distributed data parallel training with PyTorch's own engine.

Launch with ``torchrun`` (one process per GPU, or several CPU processes)::

    torchrun --nproc_per_node 4 -m train --data data/rotation.nc --out runs/rg
    torchrun --nnodes 2 --node_rank 0 --master_addr host0 --master_port 29500 \\
             --nproc_per_node 8 -m train --config cfg.toml

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`setup` reads them and starts a process group: ``nccl`` when
training on CUDA, ``gloo`` on CPU. Each process then sees a disjoint shard of the train
windows (a ``DistributedSampler``), gradients are averaged by
``DistributedDataParallel``, metrics are summed over processes, and only rank 0 shows
progress, writes the metrics log and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "setup", "cleanup", "all_reduce_sum", "barrier"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device_kind: str) -> DistInfo:
    """Join the process group described by the torchrun environment (no-op when
    ``WORLD_SIZE`` is unset or 1). ``device_kind`` is ``"cuda"`` or ``"cpu"``."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", dist.get_rank())), False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if device_kind == "cuda":
        torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo", rank=rank,
                            world_size=world)
    return DistInfo(rank, world, local, True)


def cleanup(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()
