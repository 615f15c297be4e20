"""The LightningDataModule for semi-supervised training.

Each training step yields a dict with a ``labelled`` batch of ``batch_size`` samples
and an ``unlabelled`` batch of ``mu * batch_size`` samples (raw pixels, labels,
metadata). The unlabelled batch keeps the true label where one exists (-1
elsewhere) so that tasks can report pseudo-label accuracy; tasks must not train on
it. Normalisation statistics are computed from the training samples unless given,
and travel with the DataModule's state into checkpoints.
"""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from lightning import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader
from torch import Tensor
from torch.utils.data import DataLoader, RandomSampler, Subset

from geossl.data.datasets import GeoClassificationDataset
from geossl.data.splits import SplitConfig, load_or_make_splits, split_counts
from geossl.data.stats import band_statistics
from geossl.errors import SplitError


def collate_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors of a list of samples; keep other values (CRS text) as lists.

    TorchGeo's ``stack_samples`` stacks every value, which fails on CRS strings.

    Args:
        samples: sample dicts with the same keys.

    Returns:
        The batch.
    """
    return {
        key: torch.stack([s[key] for s in samples])
        if isinstance(samples[0][key], Tensor)
        else [s[key] for s in samples]
        for key in samples[0]
    }


class SemiSupervisedDataModule(LightningDataModule):
    """Labelled, unlabelled, validation and test loaders from one dataset.

    Args:
        dataset: any geossl dataset.
        split: how to split it; the split is saved to ``run_dir/splits.csv`` and
            reloaded from there.
        run_dir: folder of the run.
        batch_size: labelled samples per step (B).
        mu: ratio of unlabelled to labelled samples per step.
        num_workers: data-loading worker processes.
        unlabelled_includes_labelled: add the labelled samples (labels hidden from
            training) to the unlabelled pool, as FixMatch does.
        mean: per-band means; None to compute them from the training samples.
        std: per-band standard deviations; None to compute them.
        stats_samples: at most this many training samples for the statistics.
        seed: seed of the samplers and the statistics subset.
    """

    def __init__(
        self,
        dataset: GeoClassificationDataset,
        split: SplitConfig | None = None,
        run_dir: str | Path = 'runs/default',
        batch_size: int = 32,
        mu: int = 7,
        num_workers: int = 0,
        unlabelled_includes_labelled: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        stats_samples: int = 1024,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise SplitError('batch_size', f'is {batch_size}, not >= 1')
        if mu < 0:
            raise SplitError('mu', f'is {mu}, not >= 0')
        self.dataset = dataset
        self.split = split or SplitConfig()
        self.run_dir = Path(run_dir)
        self.batch_size = batch_size
        self.mu = mu
        self.num_workers = num_workers
        self.unlabelled_includes_labelled = unlabelled_includes_labelled
        self.mean = (
            torch.tensor(mean, dtype=torch.float32) if mean is not None else None
        )
        self.std = torch.tensor(std, dtype=torch.float32) if std is not None else None
        self.stats_samples = stats_samples
        self.seed = seed
        self.splits: pd.DataFrame | None = None
        self.positions: dict[str, np.ndarray] = {}

    def setup(self, stage: str | None = None) -> None:
        """Load or make the split, and compute band statistics if not given.

        Args:
            stage: the Lightning stage (unused: every stage needs the same split).
        """
        if self.splits is not None:
            return
        self.splits = load_or_make_splits(
            self.dataset, self.split, self.run_dir / 'splits.csv'
        )
        names = self.splits['split'].to_numpy()
        self.positions = {
            name: np.flatnonzero(names == name) for name in split_counts(self.splits)
        }
        if self.unlabelled_includes_labelled:
            self.positions['unlabelled'] = np.concatenate(
                [self.positions['unlabelled'], self.positions['labelled']]
            )
        if self.mean is None or self.std is None:
            train = np.union1d(self.positions['labelled'], self.positions['unlabelled'])
            self.mean, self.std = band_statistics(
                self.dataset, train, self.stats_samples, self.seed
            )

    @property
    def steps_per_epoch(self) -> int:
        """Training steps per epoch: one pass over the unlabelled pool (or labelled)."""
        if self.mu and len(self.positions['unlabelled']):
            return math.ceil(
                len(self.positions['unlabelled']) / (self.mu * self.batch_size)
            )
        return math.ceil(len(self.positions['labelled']) / self.batch_size)

    def _loader(
        self, name: str, batch_size: int, num_samples: int | None
    ) -> DataLoader:
        subset = Subset(self.dataset, self.positions[name].tolist())
        sampler = None
        if num_samples is not None:
            # Each training loader draws from its own stream of the run's seed.
            stream = ('labelled', 'unlabelled').index(name)
            generator = torch.Generator().manual_seed(self.seed * 2 + stream)
            sampler = RandomSampler(
                subset,
                replacement=len(subset) < num_samples,
                num_samples=num_samples,
                generator=generator,
            )
        return DataLoader(
            subset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            drop_last=num_samples is not None,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> CombinedLoader:
        """Labelled and unlabelled batches, the same number of steps each.

        Returns:
            A loader of ``{'labelled': batch, 'unlabelled': batch}``; without
            unlabelled data (or with ``mu=0``) only ``labelled``.
        """
        steps = self.steps_per_epoch
        loaders = {
            'labelled': self._loader(
                'labelled', self.batch_size, steps * self.batch_size
            )
        }
        if self.mu and len(self.positions['unlabelled']):
            size = self.mu * self.batch_size
            loaders['unlabelled'] = self._loader('unlabelled', size, steps * size)
        return CombinedLoader(loaders, mode='min_size')

    def val_dataloader(self) -> DataLoader:
        """Validation samples, in order.

        Returns:
            The loader.
        """
        return self._loader('val', self.batch_size, None)

    def test_dataloader(self) -> DataLoader:
        """Test samples, in order.

        Returns:
            The loader.
        """
        return self._loader('test', self.batch_size, None)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: normalisation statistics, bands and classes.

        Returns:
            The state.
        """
        return {
            'mean': self.mean,
            'std': self.std,
            'band_names': self.dataset.band_names,
            'classes': self.dataset.classes,
            'multilabel': self.dataset.multilabel,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the normalisation statistics from a checkpoint.

        Args:
            state_dict: from :meth:`state_dict`.
        """
        self.mean = state_dict['mean']
        self.std = state_dict['std']
