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
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from lightning import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader, rank_zero_info
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from geossl.data.datasets import GeoClassificationDataset, InMemoryDataset
from geossl.data.pixels import NodataPolicy
from geossl.data.samplers import ResumableSampler
from geossl.data.split_files import write_split_map
from geossl.data.splits import (
    SplitConfig,
    SplitStrategy,
    UnnamedSamples,
    describe_split,
    load_or_make_splits,
    save_splits,
    split_counts,
)
from geossl.data.stats import band_statistics
from geossl.errors import GeosslInputError, SplitError


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
        balance_classes: draw labelled samples so that every class comes equally
            often (for few, imbalanced labels such as a scene's; multi-class only).
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
        balance_classes: bool = False,
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
        if balance_classes and dataset.multilabel:
            raise SplitError(
                'balance_classes', 'is for multi-class data; this data is multi-label'
            )
        self.balance_classes = balance_classes
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
        path = self.run_dir / 'splits.csv'
        # A new split is saved only once the statistics have read the data, so
        # that bad data leaves no run folder behind.
        self.splits = self._load_or_make_splits(path)
        for line in describe_split(self.dataset, self.splits):
            rank_zero_info(line)
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
        if not path.exists():
            save_splits(self.splits, self.split, path)

    def _load_or_make_splits(self, path: Path) -> pd.DataFrame:
        return load_or_make_splits(self.dataset, self.split, path, save=False)

    @property
    def _processes(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    @property
    def steps_per_epoch(self) -> int:
        """Training steps per epoch, one pass over the unlabelled pool (or labelled).

        With several processes (DDP), each step takes a batch in each process.
        """
        batch = self.batch_size * self._processes
        if self.mu and len(self.positions['unlabelled']):
            return math.ceil(len(self.positions['unlabelled']) / (self.mu * batch))
        return math.ceil(len(self.positions['labelled']) / batch)

    def _loader(
        self, name: str, batch_size: int, num_samples: int | None
    ) -> DataLoader:
        subset = Subset(self.dataset, self.positions[name].tolist())
        sampler = None
        if num_samples is not None:
            # Each training loader draws from its own stream of the run's seed.
            stream = ('labelled', 'unlabelled').index(name)
            weights = None
            if name == 'labelled' and self.balance_classes:
                # Each class is drawn equally often, however few labels it has.
                targets = self.dataset.targets[self.positions[name]]
                counts = np.bincount(targets, minlength=len(self.dataset.classes))
                weights = torch.as_tensor(1.0 / counts[targets])
            sampler = ResumableSampler(
                len(subset),
                num_samples,
                self.seed * 2 + stream,
                weights,
                self._processes,
                self.trainer.global_rank if self.trainer is not None else 0,
            )
            sampler.position = self._batches_done() * batch_size
        return DataLoader(
            subset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            drop_last=num_samples is not None,
            persistent_workers=self.num_workers > 0,
            # Worker seeds come from here, not from the global random state that
            # the training step's augmentations draw from.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _batches_done(self) -> int:
        """Training batches drawn before this fit (those of a resumed checkpoint).

        The Trainer restores its step count before it asks for the training loader,
        so a resumed run's samplers start where the checkpointed run stopped.

        Returns:
            Batches per process times processes; 0 outside a Trainer.
        """
        if self.trainer is None:
            return 0
        steps = self.trainer.global_step * self.trainer.accumulate_grad_batches
        return steps * self._processes

    def train_dataloader(self) -> CombinedLoader:
        """Labelled and unlabelled batches, the same number of steps each.

        Returns:
            A loader of ``{'labelled': batch, 'unlabelled': batch}``; without
            unlabelled data (or with ``mu=0``) only ``labelled``.
        """
        # One stream of draws for all processes, which Lightning deals out among
        # them: DDP draws the samples one process would with the global batch.
        draws = self.steps_per_epoch * self._processes
        loaders = {
            'labelled': self._loader(
                'labelled', self.batch_size, draws * self.batch_size
            )
        }
        if self.mu and len(self.positions['unlabelled']):
            size = self.mu * self.batch_size
            loaders['unlabelled'] = self._loader('unlabelled', size, draws * size)
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

    def predict_dataloader(self) -> DataLoader:
        """The test samples, for ``predict`` (whole rasters go to ``geossl map``).

        Returns:
            The loader.
        """
        return self.test_dataloader()

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


class PretrainingDataModule(SemiSupervisedDataModule):
    """Batches of the training tiles, for self-supervised pretraining.

    Every tile of the training split (labelled or not) is drawn, in batches of
    ``{'image': raw pixels, ...}``; validation and test tiles are held out as
    ``geossl fit`` holds them out with the same split options, so that a
    pretrained backbone is never evaluated on tiles it trained on. Data with no
    labels at all pretrains on every tile. ``mu`` is not used.
    """

    def _load_or_make_splits(self, path: Path) -> pd.DataFrame:
        if not self.dataset.is_labelled.any():
            # Nothing to hold out for evaluation: every tile pretrains.
            return pd.DataFrame(
                {'sample_id': self.dataset.sample_ids, 'split': 'unlabelled'}
            )
        return super()._load_or_make_splits(path)

    @property
    def steps_per_epoch(self) -> int:
        """Training steps per epoch, one pass over the training tiles."""
        batch = self.batch_size * self._processes
        return math.ceil(len(self.positions['unlabelled']) / batch)

    def train_dataloader(self) -> DataLoader:
        """Batches of training tiles, from a resumable seeded stream.

        Returns:
            The loader.
        """
        draws = self.steps_per_epoch * self._processes * self.batch_size
        return self._loader('unlabelled', self.batch_size, draws)


DatasetKind = Literal['auto', 'eurosat', 'bigearthnet']


class GeoDataModule(SemiSupervisedDataModule):
    """The DataModule of the ``geossl`` command: a dataset and its split from options.

    ``root`` is a folder of class sub-folders or BigEarthNet patches, a folder of
    rasters, a raster file, a scene (with ``labels``), STAC items (a STAC Item,
    ItemCollection or static catalog, file or URL: scenes, see
    :mod:`geossl.data.stac`), or a TorchGeo dataset root (``dataset='eurosat'`` or
    ``'bigearthnet'``).

    Args:
        root: the data (see above).
        labels: vector file of labelled points or polygons over the scene(s) in
            ``root`` (see :class:`~geossl.data.scene.SceneDataset`).
        dataset: ``auto`` reads ``root`` as geossl does; ``eurosat`` and
            ``bigearthnet`` use TorchGeo's datasets (and their downloads).
        class_column: the labels file's class column.
        chip_size: chip size in pixels: crops tiles, or cuts scenes (64 if None).
        stride: step of a scene's unlabelled chip grid; None for the chip size.
        unlabelled_chips: keep at most this many unlabelled scene chips.
        max_cloud_fraction: leave out unlabelled scene chips with a larger share of
            pixels the scene's cloud mask marks invalid (an SCL file or band);
            labelled ones above it are kept with a warning naming them.
        reflectance_offset: the Sentinel-2 reflectance offset of data that
            declares none in its metadata (see :mod:`geossl.data.reflectance`),
            e.g. -1000 for GeoTIFFs cut from baseline 04.00 products without it.
        bands: bands to use, by name or 0-based position; None for all.
        band_names: names of the bands of data that does not name them.
        bigearthnet_classes: 19 or 43.
        nodata: ``error`` or ``zero`` for nodata/NaN pixels.
        location_optional: mark the location of rasters with no CRS as missing.
        locations: a CSV or Parquet table of where (and when) the samples were
            taken, for data that does not say: a path or file-name column, ``lon``,
            ``lat``, optionally ``datetime`` (see :mod:`geossl.data.locations`).
        download: let TorchGeo download ``eurosat``/``bigearthnet`` if missing.
        labels_per_class: labelled samples per class (None: ``label_fraction``).
        label_fraction: fraction of the training pool that keeps its labels.
        val_fraction: fraction held out for validation.
        test_fraction: fraction held out for testing.
        split_strategy: how held-out samples are chosen: ``random``
            (stratified), ``spatial`` (blocks of ``block_size_km``), ``longitude``
            (test the easternmost, validate the next westward, train the rest) or
            ``temporal`` (latest dates).
        block_size_km: block size of the spatial split.
        split_file: your own split: a CSV, Parquet or vector file with a column
            naming the samples (``sample_id``, or a path or file name as in a
            locations table) and a ``split`` column (``labelled``,
            ``unlabelled``, ``val``, ``test``, ``excluded``, or ``train``:
            labelled where the sample has a label). The options above that choose
            samples are then unused.
        unnamed_samples: what the samples a split file does not name become:
            ``unlabelled`` (the default; counted in the log) or ``error``.
        test_region: a vector file (any CRS) whose polygons hold the test
            samples (their centres); unlabelled samples inside leave training too.
        val_region: the same for the validation samples; unset, ``val_fraction``
            of the rest is drawn by ``split_strategy``.
        folds: k of a k-fold cross-validation: ``split_strategy``'s groups
            (samples, ``spatial`` blocks or ``temporal`` dates) are dealt to k
            folds, balanced by class; run one ``geossl fit`` per fold.
        fold: the fold this run tests, from 0 to ``folds - 1``.
        buffer_km: leave out of training every sample, labelled or not, within
            this distance of a test sample; 0 for none.
        batch_size: labelled samples per step (B).
        mu: unlabelled samples per labelled sample.
        balance_classes: draw every class equally often in labelled batches.
        num_workers: data-loading processes.
        in_memory: read every sample once and keep it in memory
            (:class:`~geossl.data.datasets.InMemoryDataset`), for data that fits.
        run_dir: where the split is saved; None for the Trainer's root folder.
        seed: seed of the split, samplers and statistics.
    """

    def __init__(
        self,
        root: str,
        labels: str | None = None,
        dataset: DatasetKind = 'auto',
        class_column: str = 'class',
        chip_size: int | None = None,
        stride: int | None = None,
        unlabelled_chips: int | None = None,
        max_cloud_fraction: float = 0.1,
        reflectance_offset: float = 0.0,
        bands: list[str | int] | None = None,
        band_names: list[str] | None = None,
        bigearthnet_classes: int = 19,
        nodata: NodataPolicy = 'error',
        location_optional: bool = False,
        locations: str | None = None,
        download: bool = False,
        labels_per_class: int | None = 4,
        label_fraction: float | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_strategy: SplitStrategy = 'random',
        block_size_km: float = 50.0,
        split_file: str | None = None,
        unnamed_samples: UnnamedSamples = 'unlabelled',
        test_region: str | None = None,
        val_region: str | None = None,
        folds: int | None = None,
        fold: int = 0,
        buffer_km: float = 0.0,
        batch_size: int = 32,
        mu: int = 7,
        balance_classes: bool = False,
        num_workers: int = 0,
        in_memory: bool = False,
        run_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        # The readers of files, scenes and TorchGeo's datasets load here, where a
        # source is read: the DataModules above train on any dataset without them.
        from geossl.data.folder import ImageFolderDataset
        from geossl.data.metadata import MetadataReader
        from geossl.data.scene import SceneDataset
        from geossl.data.stac import is_stac
        from geossl.data.torchgeo_datasets import bigearthnet, eurosat

        reader = MetadataReader(
            locations=locations, require_location=not location_optional
        )
        scenes = labels is not None or is_stac(root)
        if scenes and locations is not None:
            raise GeosslInputError(
                'locations',
                "is for tiles; a scene's chips take their place from the scene's "
                'georeferencing',
            )
        if scenes:
            data: GeoClassificationDataset = SceneDataset(
                root,
                labels,
                class_column=class_column,
                chip_size=chip_size or 64,
                stride=stride,
                unlabelled_chips=unlabelled_chips,
                max_cloud_fraction=max_cloud_fraction,
                reflectance_offset=reflectance_offset,
                bands=bands,
                nodata=nodata,
                reader=reader,
                seed=seed,
            )
        elif reflectance_offset and dataset != 'auto':
            raise GeosslInputError(
                'reflectance_offset',
                f"TorchGeo's {dataset} data predates Sentinel-2 baseline 04.00 and "
                'carries no offset',
            )
        elif dataset == 'eurosat':
            data = eurosat(root, download=download, reader=reader)
        elif dataset == 'bigearthnet':
            data = bigearthnet(
                root, num_classes=bigearthnet_classes, download=download, reader=reader
            )
        else:
            data = ImageFolderDataset(
                root,
                bands=bands,
                band_names=band_names,
                chip_size=chip_size,
                nodata=nodata,
                reader=reader,
                reflectance_offset=reflectance_offset,
                bigearthnet_classes=bigearthnet_classes,
            )
        if in_memory:
            data = InMemoryDataset(data)
        split = SplitConfig(
            labels_per_class=labels_per_class,
            label_fraction=label_fraction,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            strategy=split_strategy,
            block_size_km=block_size_km,
            seed=seed,
            file=split_file,
            unnamed_samples=unnamed_samples,
            test_region=test_region,
            val_region=val_region,
            folds=folds,
            fold=fold,
            buffer_km=buffer_km,
        )
        super().__init__(
            data,
            split,
            run_dir or 'runs/geossl',
            batch_size=batch_size,
            mu=mu,
            num_workers=num_workers,
            balance_classes=balance_classes,
            seed=seed,
        )
        self._run_dir_given = run_dir is not None
        self.chip_size = int(data[0]['image'].shape[-1])

    def setup(self, stage: str | None = None) -> None:
        """Save the split beside the Trainer's outputs unless a run folder was given.

        Args:
            stage: the Lightning stage.
        """
        if not self._run_dir_given and self.trainer is not None:
            self.run_dir = Path(self.trainer.default_root_dir)
        written = (self.run_dir / 'splits.csv').exists()
        super().setup(stage)
        if not written:
            # Beside the CSV, for QGIS: where the test and training samples lie.
            write_split_map(self.dataset, self.splits, self.run_dir / 'splits.gpkg')


class GeoPretrainingDataModule(GeoDataModule, PretrainingDataModule):
    """The DataModule of ``geossl pretrain``: ``fit``'s data options, training tiles.

    Every tile of the training split (labelled or not) is drawn; validation and
    test tiles are held out as ``geossl fit`` holds them out with the same split
    options, so that a pretrained backbone is never evaluated on tiles it trained
    on. Data with no labels at all pretrains on every tile.
    """
