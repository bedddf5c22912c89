"""DistributedDataParallel plumbing for training under ``torchrun``: ranks, the Stop vote, buffers.

Everything here is a no-op in a single process (``torch.distributed`` not initialised), so the
training loops call it unconditionally. Used by :func:`vision_core.fcn.train_fcn`; the command
line's ``torchrun`` entry (:mod:`vision_core.cli.fcn`) joins the process group.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = ["world_size", "rank", "wrap", "stop_group", "stop_vote", "broadcast_buffers", "rank_seed"]


def world_size() -> int:
    """Processes in the group, 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank, 0 without a group."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def wrap(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` in ``DistributedDataParallel`` when there are several processes, else ``net`` itself.

    Wrapping broadcasts rank 0's weights, so every process starts from the same network.
    """
    if world_size() == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    device_ids = None
    if device.type == "cuda":
        device_ids = [device.index if device.index is not None else torch.cuda.current_device()]
    return DistributedDataParallel(net, device_ids=device_ids)


def stop_group() -> dist.ProcessGroup | None:
    """A gloo group for the per-batch Stop vote: it must not wait on the GPU as an NCCL one would."""
    if world_size() == 1:
        return None
    return None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")


def stop_vote(local: bool, group: dist.ProcessGroup | None) -> bool:
    """Whether any process's Stop flag is set; every process must call it before every batch."""
    if world_size() == 1:
        return local
    # Every process must stop at the same batch, or the others wait forever in DDP's all-reduce.
    vote = torch.tensor([int(local)])
    dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=group)
    return bool(vote.item())


def broadcast_buffers(net: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm's running statistics, each process's own) become everyone's."""
    if world_size() > 1:
        for buffer in net.buffers():
            dist.broadcast(buffer, src=0)


def rank_seed(seed: int, rank: int) -> int:
    """A seed for process ``rank``'s own random stream (e.g. crops), reproducible from ``(seed, rank)``."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> 1)
