"""A fixed-size memory of the most recent rows, kept in buffers.

CoMatch remembers the embeddings and class probabilities of recent samples and the
class distributions of recent batches; both are rings of rows that checkpoint and
resume with the policy that owns them.
"""

import torch
from torch import Tensor, nn


class RingBuffer(nn.Module):
    """The last ``capacity`` rows pushed, oldest overwritten first.

    Args:
        capacity: how many rows are kept.
        width: the length of each row.
    """

    def __init__(self, capacity: int, width: int) -> None:
        super().__init__()
        self.register_buffer('rows', torch.zeros(capacity, width))
        self.register_buffer('pushed', torch.tensor(0))

    @property
    def full(self) -> bool:
        """Whether ``capacity`` rows have been pushed (so none is a placeholder)."""
        return int(self.pushed) >= len(self.rows)

    def stored(self) -> Tensor:
        """The rows pushed so far, at most ``capacity`` of them, in slot order."""
        return self.rows if self.full else self.rows[: int(self.pushed)]

    def push(self, rows: Tensor) -> None:
        """Write rows into the oldest slots.

        Args:
            rows: ``(N, width)``; of more than ``capacity`` rows the last are kept.
        """
        count = len(rows)
        kept = rows[-len(self.rows) :]
        start = int(self.pushed) + count - len(kept)
        slots = (start + torch.arange(len(kept), device=rows.device)) % len(self.rows)
        self.rows[slots] = kept.detach().to(self.rows.dtype)
        self.pushed.add_(count)
