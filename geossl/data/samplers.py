"""Training draws that a run stopped at any step can pick up exactly.

A :class:`ResumableSampler` is one stream of sample positions across epochs: the
order of epoch ``e`` depends only on the seed and ``e``, and the stream can start at
any point of it. A run resumed from a checkpoint taken after ``k`` batches starts
the stream at ``k`` batches, and so draws the very samples an uninterrupted run
would have drawn next, whatever Lightning's epoch boundaries.
"""

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Seeded random draws, one epoch per iteration, resumable at any position.

    Args:
        num_items: size of the pool drawn from.
        num_samples: draws per epoch.
        seed: seed of the stream; epoch ``e`` draws from ``seed`` and ``e`` alone.
        weights: per-item weights for drawing with replacement (e.g. to balance
            classes); None for uniform draws.

    Draws are without replacement when the pool is at least ``num_samples`` and
    there are no weights, and with replacement otherwise.
    """

    def __init__(
        self,
        num_items: int,
        num_samples: int,
        seed: int,
        weights: Tensor | None = None,
    ) -> None:
        self.num_items = num_items
        self.num_samples = num_samples
        self.seed = seed
        self.weights = weights
        #: Draws made so far, across epochs: where the next iteration starts.
        self.position = 0

    def epoch_order(self, epoch: int) -> Tensor:
        """The draws of one epoch.

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
        """Draw from the current position to the end of its epoch.

        Yields:
            Item indices.
        """
        epoch, offset = divmod(self.position, self.num_samples)
        for index in self.epoch_order(epoch)[offset:].tolist():
            self.position += 1
            yield index

    def __len__(self) -> int:
        """Draws in a whole epoch (a resumed epoch yields only its remainder).

        Returns:
            ``num_samples``.
        """
        return self.num_samples
