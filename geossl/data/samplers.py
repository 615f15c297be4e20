"""Training draws that a run stopped at any step can pick up exactly.

A :class:`ResumableSampler` is one stream of sample positions across epochs: the
order of epoch ``e`` depends only on the seed and ``e``, and the stream can start at
any point of it. A run resumed from a checkpoint taken after ``k`` batches starts
the stream at ``k`` batches, and so draws the very samples an uninterrupted run
would have drawn next, whatever Lightning's epoch boundaries. Under DDP the
processes deal the one stream out between them, so that two processes draw at each
step the samples one process would draw with their global batch.
"""

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DistributedSampler


class ResumableSampler(DistributedSampler):
    """Seeded random draws, one epoch per iteration, resumable at any position.

    A :class:`~torch.utils.data.DistributedSampler` only so that Lightning uses
    it as it is under DDP instead of wrapping it in a sampler that would shuffle
    the stream again.

    Args:
        num_items: size of the pool drawn from.
        num_samples: draws per epoch, over all processes (a multiple of
            ``processes``).
        seed: seed of the stream; epoch ``e`` draws from ``seed`` and ``e`` alone.
        weights: per-item weights for drawing with replacement (e.g. to balance
            classes); None for uniform draws.
        processes: processes sharing the stream (DDP's world size).
        rank: this process; it takes every ``processes``-th draw from ``rank`` on.

    Draws are without replacement when the pool is at least ``num_samples`` and
    there are no weights, and with replacement otherwise.
    """

    def __init__(
        self,
        num_items: int,
        num_samples: int,
        seed: int,
        weights: Tensor | None = None,
        processes: int = 1,
        rank: int = 0,
    ) -> None:
        super().__init__(
            range(num_items), num_replicas=processes, rank=rank, shuffle=False
        )
        self.num_items = num_items
        self.num_samples = num_samples
        self.seed = seed
        self.weights = weights
        #: Draws made so far by all processes, across epochs, where the next
        #: iteration starts.
        self.position = 0

    def epoch_order(self, epoch: int) -> Tensor:
        """The draws of one epoch, for all processes.

        Args:
            epoch: the epoch, from 0.

        Returns:
            ``num_samples`` item indices.
        """
        # Seeds of distinct (seed, epoch) pairs never collide.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self.weights is not None:
            return torch.multinomial(
                self.weights, self.num_samples, replacement=True, generator=generator
            )
        if self.num_items < self.num_samples:
            return torch.randint(
                self.num_items, (self.num_samples,), generator=generator
            )
        return torch.randperm(self.num_items, generator=generator)[: self.num_samples]

    def __iter__(self) -> Iterator[int]:
        """Draw this process's share from the current position to the epoch's end.

        Yields:
            Item indices.
        """
        epoch, offset = divmod(self.position, self.num_samples)
        self.position = (epoch + 1) * self.num_samples
        # The first draw at or after the offset that falls to this process.
        start = offset + (self.rank - offset) % self.num_replicas
        yield from self.epoch_order(epoch)[start :: self.num_replicas].tolist()

    def __len__(self) -> int:
        """This process's draws in a whole epoch (a resumed epoch yields fewer).

        Returns:
            ``num_samples`` divided among the processes.
        """
        return self.num_samples // self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Ignore Lightning's epoch: the stream position says which epoch is next.

        Args:
            epoch: Lightning's epoch.
        """
