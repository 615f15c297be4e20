"""Per-band normalisation statistics computed from training samples."""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from geossl.progress import Tqdm


def band_statistics(
    dataset: Dataset[dict[str, Tensor]],
    positions: Sequence[int],
    max_samples: int | None = 1024,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of each band over (a random subset of) samples.

    Sums are accumulated in float64 so that uint16 reflectance over many chips does
    not lose precision.

    Args:
        dataset: returns dicts with an ``image`` of shape ``C x H x W``.
        positions: which samples to use (the training samples).
        max_samples: use at most this many, drawn at random; None for all.
        seed: seed of that draw.
        progress: show a progress bar.

    Raises:
        ValueError: if ``positions`` is empty.

    Returns:
        float32 ``mean`` and ``std``, each of shape ``(C,)``; a constant band gets a
        standard deviation of 1 so that normalising it cannot divide by zero.
    """
    positions = np.asarray(positions)
    if len(positions) == 0:
        raise ValueError('band statistics need at least one sample')
    if max_samples is not None and len(positions) > max_samples:
        positions = np.random.default_rng(seed).choice(
            positions, max_samples, replace=False
        )
    total = total_sq = None
    count = 0
    for position in Tqdm(
        positions, desc='Band statistics', unit='sample', disable=not progress
    ):
        image = dataset[int(position)]['image'].to(torch.float64).flatten(1)
        if total is None:
            total = image.sum(dim=1)
            total_sq = (image**2).sum(dim=1)
        else:
            total += image.sum(dim=1)
            total_sq += (image**2).sum(dim=1)
        count += image.shape[1]
    mean = total / count
    std = (total_sq / count - mean**2).clamp_min(0).sqrt()
    std[std == 0] = 1.0
    return mean.float(), std.float()
