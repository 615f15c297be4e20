"""Datasets that return images with where and when each was taken.

Every geossl dataset is a :class:`GeoClassificationDataset`: an index (one row per
sample, see :mod:`geossl.data.index`) plus a way to read pixels. The index alone
answers what splits and samplers need (labels, lon/lat, time) without reading
pixels. Each sample is a dict:

* ``image``: float32 ``C x H x W`` raw values (not normalised);
* ``label``: int64 class index (multi-class) or float32 multi-hot vector
  (multi-label); -1 where unknown (unlabelled samples);
* ``meta``: float32 ``[lon, lat, unix_time]``; ``meta_mask``: bool, True where known;
* ``index``: int64 position of the sample in the dataset (stable across epochs);
* ``crs``: the sample's CRS as text, or None; ``bounds``: float64
  ``[minx, miny, maxx, maxy]`` in that CRS (zeros if not georeferenced).
"""

import abc
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from geossl.data.columns import BOUNDS_COLUMNS, LABEL_SEPARATOR
from geossl.data.reflectance import BASELINE_04_START
from geossl.data.tile_metadata import MetadataParts, TileMetadata
from geossl.errors import GeosslInputError
from geossl.progress import Tqdm


def encode_labels(
    labels: Sequence[str | None],
    classes: Sequence[str],
    multilabel: bool,
    label_map: Mapping[str, str | None] | None = None,
) -> np.ndarray:
    """Turn label texts from an index into training targets.

    Args:
        labels: one label text per sample (multi-label names joined by
            :data:`~geossl.data.columns.LABEL_SEPARATOR`); None where unlabelled.
        classes: the class names, in target order.
        multilabel: encode multi-hot vectors instead of class indices.
        label_map: optional renaming of label names before encoding; names it maps
            to None are dropped, names it does not list are kept as they are (e.g.
            :data:`~geossl.data.folder.BIGEARTHNET_43_TO_19`).

    Returns:
        int64 ``(N,)`` class indices, or float32 ``(N, K)`` multi-hot rows; -1 marks
        unlabelled samples.

    Raises:
        GeosslInputError: if a label is not among ``classes``.
    """
    position = {name: i for i, name in enumerate(classes)}
    if multilabel:
        targets = np.zeros((len(labels), len(classes)), dtype=np.float32)
    else:
        targets = np.zeros(len(labels), dtype=np.int64)
    for row, label in enumerate(labels):
        if not isinstance(label, str):
            targets[row] = -1
            continue
        names = label.split(LABEL_SEPARATOR) if multilabel else [label]
        if label_map is not None:
            renamed = (label_map.get(name, name) for name in names)
            names = [name for name in renamed if name is not None]
        unknown = [name for name in names if name not in position]
        if unknown:
            raise GeosslInputError(
                'classes',
                f'label {unknown[0]!r} is not one of the {len(classes)} classes',
            )
        if multilabel:
            targets[row, [position[name] for name in names]] = 1.0
        else:
            targets[row] = position[names[0]]
    return targets


def _warn_undeclared(index: pd.DataFrame, declared: pd.Series) -> None:
    """Warn of samples from baseline 04.00 on whose data declares no offset."""
    late = index['datetime'] >= pd.Timestamp(BASELINE_04_START)
    undeclared = index[late & declared.isna()]
    if len(undeclared):
        warnings.warn(
            f'{undeclared["path"].iloc[0]}: {len(undeclared)} samples acquired from '
            '25 January 2022 (Sentinel-2 processing baseline 04.00) declare no '
            'reflectance offset; if their values carry one, give '
            '--data.reflectance_offset -1000',
            UserWarning,
            stacklevel=3,
        )


def _row_metadata(row: pd.Series) -> TileMetadata:
    """The metadata of one index row (NaN and NaT become None)."""
    located = pd.notna(row['lon']) and pd.notna(row['lat'])
    return TileMetadata(
        lon=float(row['lon']) if located else None,
        lat=float(row['lat']) if located else None,
        time=row['datetime'].to_pydatetime() if pd.notna(row['datetime']) else None,
        crs=row['crs'] if isinstance(row['crs'], str) else None,
    )


@dataclass(frozen=True)
class SampleColumns:
    """What each sample returns from its index row, as tensors of all the samples.

    Made once from an index: reading a row of a pandas index costs 90 us, and a
    training step of 24 tiles held in memory spent 2 ms on it.

    Attributes:
        index: the index these columns were made from.
        meta: float32 ``(N, 3)`` ``[lon, lat, unix_time]``, zeros where missing.
        meta_mask: bool ``(N, 3)``, True where known.
        crs: each sample's CRS as text, or None.
        bounds: float64 ``(N, 4)`` in each sample's CRS, zeros without one.
    """

    index: pd.DataFrame
    meta: Tensor
    meta_mask: Tensor
    crs: list[str | None]
    bounds: Tensor

    @classmethod
    def of(cls, index: pd.DataFrame) -> Self:
        """The columns of an index, as :meth:`TileMetadata.to_tensors` encodes them.

        Args:
            index: one row per sample, with ``lon``, ``lat``, ``datetime``, ``crs``
                and the bounds.

        Returns:
            The columns.
        """
        located = (index['lon'].notna() & index['lat'].notna()).to_numpy()
        dated = index['datetime'].notna().to_numpy()
        seconds = np.zeros(len(index))
        seconds[dated] = [
            time.to_pydatetime().timestamp() for time in index['datetime'][dated]
        ]
        lonlat = index[['lon', 'lat']].to_numpy(dtype=float)
        values = np.column_stack([np.where(located[:, None], lonlat, 0.0), seconds])
        crs = [name if isinstance(name, str) else None for name in index['crs']]
        georeferenced = np.array([name is not None for name in crs], dtype=bool)
        bounds = index[list(BOUNDS_COLUMNS)].to_numpy(dtype=float)
        return cls(
            index,
            torch.as_tensor(values, dtype=torch.float32),
            torch.as_tensor(np.column_stack([located, located, dated])),
            crs,
            torch.as_tensor(np.where(georeferenced[:, None], bounds, 0.0)),
        )


class GeoClassificationDataset(Dataset[dict[str, Any]], abc.ABC):
    """Classification samples with location and time, described by an index.

    Subclasses implement :meth:`read_image`; everything else comes from the index.

    Attributes:
        index: one row per sample (see :func:`geossl.data.index.build_index`).
        classes: class names in target order.
        multilabel: True for multi-hot targets.
        band_names: names of the bands returned, in order.
        label_map: the renaming of label names applied before encoding, if any.
        targets: encoded labels (see :func:`~.encode_labels`).
        reflectance_offset: the offset of samples whose data declares none.
        offsets: each sample's reflectance offset, added to its valid pixels as
            they are read (see :mod:`geossl.data.reflectance`); the index's
            ``reflectance_offset`` column.
    """

    def __init__(
        self,
        index: pd.DataFrame,
        classes: Sequence[str],
        multilabel: bool,
        band_names: Sequence[str],
        label_map: Mapping[str, str | None] | None = None,
        reflectance_offset: float = 0.0,
    ) -> None:
        """Initialise from an index.

        Args:
            index: one row per sample; a ``reflectance_offset`` column holds the
                offset each sample's data declares (NaN where none).
            classes: class names in target order.
            multilabel: True for multi-hot targets.
            band_names: names of the bands returned, in order.
            label_map: optional renaming of label names (see :func:`~.encode_labels`).
            reflectance_offset: the offset of samples whose data declares none.
        """
        self.index = index.reset_index(drop=True)
        self.classes = list(classes)
        self.multilabel = multilabel
        self.band_names = list(band_names)
        self.label_map = label_map
        self.targets = encode_labels(
            list(self.index['label']), self.classes, multilabel, label_map
        )
        self.reflectance_offset = reflectance_offset
        declared = self.index.get('reflectance_offset')
        if declared is None:
            declared = pd.Series(np.nan, index=self.index.index)
        if reflectance_offset == 0:
            _warn_undeclared(self.index, declared)
        self.index['reflectance_offset'] = declared.fillna(reflectance_offset)
        self.offsets = self.index['reflectance_offset'].to_numpy(dtype=np.float32)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def sample_ids(self) -> list[str]:
        """Stable identifiers of the samples, used by split files."""
        return list(self.index['sample_id'])

    @property
    def metadata_parts(self) -> MetadataParts:
        """The metadata the samples have; a part is there if any sample has it.

        Samples that lack a part the others have are masked as missing by the
        metadata encoder; a part no sample has is left out.
        """
        located = bool(self.index['lon'].notna().any())
        dated = bool(self.index['datetime'].notna().any())
        parts = [name for name, has in (('location', located), ('time', dated)) if has]
        return '+'.join(parts) or 'none'  # type: ignore[return-value]

    @property
    def dtype(self) -> str | None:
        """The pixels' data type as stored (``uint8``, ``uint16``, ...), or None."""
        if 'dtype' not in self.index:
            return None
        types = self.index['dtype'].dropna()
        return str(types.iloc[0]) if len(types) else None

    @property
    def is_labelled(self) -> np.ndarray:
        """Boolean mask of the samples that carry a label."""
        if self.multilabel:
            return (self.targets >= 0).all(axis=1)
        return self.targets >= 0

    @abc.abstractmethod
    def read_image(self, position: int) -> Tensor:
        """Read the pixels of one sample.

        Args:
            position: the sample's position in the dataset.

        Returns:
            float32 ``C x H x W`` raw values.
        """

    def metadata(self, position: int) -> TileMetadata:
        """Where and when one sample was taken, from the index.

        Args:
            position: the sample's position in the dataset.

        Returns:
            The sample's metadata.
        """
        return _row_metadata(self.index.iloc[position])

    @property
    def columns(self) -> SampleColumns:
        """The index's per-sample values as tensors, made anew when it is replaced."""
        made: SampleColumns | None = getattr(self, '_columns', None)
        if made is None or made.index is not self.index:
            made = self._columns = SampleColumns.of(self.index)
        return made

    def __getitem__(self, position: int) -> dict[str, Any]:
        columns = self.columns
        return {
            'image': self.read_image(position),
            'label': torch.as_tensor(self.targets[position]),
            'meta': columns.meta[position].clone(),
            'meta_mask': columns.meta_mask[position].clone(),
            'index': torch.tensor(position),
            'crs': columns.crs[position],
            'bounds': columns.bounds[position].clone(),
        }


#: Storage types tried in order for images held in memory: the first that holds
#: every value exactly.
_EXACT_TYPES = (torch.uint8, torch.int16, torch.uint16, torch.int32)


def _narrowest_exact(image: Tensor) -> Tensor:
    """``image`` in the smallest integer type that holds it exactly, else as is."""
    if not torch.equal(image, image.round()):
        return image
    low, high = float(image.min()), float(image.max())
    for dtype in _EXACT_TYPES:
        info = torch.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return image.to(dtype)
    return image


class InMemoryDataset(GeoClassificationDataset):
    """Another dataset's images read once and kept in memory.

    For collections of small tiles (EuroSAT, BigEarthNet, scene chips) that fit in
    memory, this takes file reading out of every training step: on a 2-core CPU,
    reading 128 EuroSAT-MS GeoTIFFs per step cost 12 % of a FixMatch step even in a
    DataLoader worker. Each image is stored in the smallest integer type that holds
    its values exactly (uint16 reflectance: 106 kB per 13 x 64 x 64 tile), or as
    float32.

    Args:
        source: the dataset to read.
        transform: applied to each raw image before it is stored (e.g. a resize).
        progress: show a progress bar while reading.
    """

    def __init__(
        self,
        source: GeoClassificationDataset,
        transform: Callable[[Tensor], Tensor] | None = None,
        progress: bool = True,
    ) -> None:
        """Read every image of ``source``.

        Args:
            source: the dataset to read.
            transform: applied to each raw image before it is stored.
            progress: show a progress bar while reading.
        """
        super().__init__(
            source.index,
            source.classes,
            source.multilabel,
            source.band_names,
            source.label_map,
            source.reflectance_offset,
        )
        self.images = [
            _narrowest_exact(transform(image) if transform else image)
            for image in Tqdm(
                map(source.read_image, range(len(source))),
                total=len(source),
                desc='Reading into memory',
                unit='sample',
                disable=not progress,
            )
        ]

    def read_image(self, position: int) -> Tensor:
        """One stored image.

        Args:
            position: the sample's position.

        Returns:
            float32 ``C x H x W`` values.
        """
        return self.images[position].float()
