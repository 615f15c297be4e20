"""Statistics shared across DDP processes, so every process holds the same state.

Outside a process group (or in a group of one) each helper returns its input.
"""

import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """Whether this process is one of several in a process group.

    Returns:
        True under DDP with more than one process.
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def mean_across_processes(value: Tensor) -> Tensor:
    """Average a statistic over the DDP processes.

    Args:
        value: the local statistic.

    Returns:
        The mean over all processes.
    """
    if not is_distributed():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def gather_across_processes(value: Tensor) -> Tensor:
    """Concatenate equally sized tensors from all DDP processes along dim 0.

    Args:
        value: the local tensor.

    Returns:
        All processes' tensors, concatenated in rank order.
    """
    if not is_distributed():
        return value
    gathered = value.new_empty(
        (dist.get_world_size() * value.shape[0], *value.shape[1:])
    )
    dist.all_gather_into_tensor(gathered, value.contiguous())
    return gathered
