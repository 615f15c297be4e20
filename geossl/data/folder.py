"""Samples read from files: class folders, BigEarthNet patches, or rasters.

:class:`ImageFolderDataset` indexes a folder (:mod:`geossl.data.index`) and reads
each sample's pixels from its file or band files when asked.
"""

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import torch
from torch import Tensor
from torchgeo.datasets import BigEarthNet, EuroSAT

from geossl.data.bands import numbered_bands, resolve_bands
from geossl.data.columns import class_names
from geossl.data.datasets import GeoClassificationDataset
from geossl.data.index import index_source
from geossl.data.metadata import MetadataReader
from geossl.data.pixels import NodataPolicy
from geossl.data.raster import read_sample
from geossl.errors import (
    BandMismatchError,
    ChipSizeError,
    DatasetLayoutError,
    GeosslInputError,
)

#: The 43 CORINE classes of BigEarthNet v1 mapped onto the 19-class nomenclature
#: (None for classes with no counterpart, which are dropped), from TorchGeo's own
#: tables.
BIGEARTHNET_43_TO_19: Mapping[str, str | None] = {
    name: (
        BigEarthNet.class_sets[19][BigEarthNet.label_converter[old]]
        if old in BigEarthNet.label_converter
        else None
    )
    for old, name in enumerate(BigEarthNet.class_sets[43])
}


#: The class folders of EuroSAT; with 13 unnamed bands of 64 x 64 pixels, EuroSAT-MS.
EUROSAT_CLASSES = frozenset(
    {
        'AnnualCrop',
        'Forest',
        'HerbaceousVegetation',
        'Highway',
        'Industrial',
        'Pasture',
        'PermanentCrop',
        'Residential',
        'River',
        'SeaLake',
    }
)


#: How the index columns that all samples must share read in an error.
_DESCRIBED = {
    'bands': '{} bands',
    'width': 'a width of {} pixels',
    'height': 'a height of {} pixels',
    'band_names': 'bands named {}',
}


def _common_value(index: gpd.GeoDataFrame, column: str, hint: str = '') -> object:
    """The value most samples share in a column, refusing the first sample that differs.

    Args:
        index: the index.
        column: the column.
        hint: what to do about a sample that differs, appended to the error.

    Returns:
        The shared value.
    """
    common = index[column].mode(dropna=False).iloc[0]
    odd = index[index[column] != common]
    if len(odd):
        path = odd['path'].iloc[0]
        value = odd[column].iloc[0]
        what = _DESCRIBED[column]
        raise BandMismatchError(
            path,
            f'has {what.format(value)}, expected {what.format(common)} like the '
            f'others{hint}',
        )
    return common


class ImageFolderDataset(GeoClassificationDataset):
    """Samples from a folder: class sub-folders, BigEarthNet patches, or rasters.

    Reads multiband GeoTIFFs of any band count, per-band sample folders at mixed
    resolutions (BigEarthNet v1) and plain images (JPEG/PNG, or TIFFs with no
    georeferencing, whose location is then marked missing). See
    :mod:`geossl.data.index` for the layouts.

    Args:
        root: the folder (or a single raster file).
        bands: bands to return, by name or 0-based position; None for all.
        band_names: names of the file's bands in order, for data that does not name
            them (e.g. :attr:`torchgeo.datasets.EuroSAT.all_band_names`).
        chip_size: crop a centred square of this size from every sample; None
            requires all samples to have the same size.
        nodata: refuse (``'error'``) or zero-fill (``'zero'``) nodata/NaN pixels.
        reader: how to read location and time.
        reflectance_offset: the offset of tiles whose data declares none (see
            :mod:`geossl.data.reflectance`), e.g. -1000 for tiles cut from
            baseline 04.00 products without their metadata.
        index_path: index file to reuse and update; None for the cache.
        classes: class names in target order; None for the sorted names found
            (all BigEarthNet classes for the BigEarthNet layout).
        bigearthnet_classes: 19 or 43, the BigEarthNet nomenclature to use.
        progress: show a progress bar while indexing.
    """

    def __init__(
        self,
        root: str | Path,
        bands: Sequence[str | int] | None = None,
        band_names: Sequence[str] | None = None,
        chip_size: int | None = None,
        nodata: NodataPolicy = 'error',
        reader: MetadataReader | None = None,
        reflectance_offset: float = 0.0,
        index_path: str | Path | None = None,
        classes: Sequence[str] | None = None,
        bigearthnet_classes: int = 19,
        progress: bool = True,
    ) -> None:
        index = index_source(root, index_path, reader, progress)
        self.root = Path(root)
        self.chip_size = chip_size
        self.nodata: NodataPolicy = nodata
        self.band_count = int(_common_value(index, 'bands'))
        if chip_size is None:
            crop = '; give a chip size (--data.chip_size) to crop every tile to it'
            _common_value(index, 'width', crop)
            _common_value(index, 'height', crop)
        else:
            small = index[(index['width'] < chip_size) | (index['height'] < chip_size)]
            if len(small):
                raise ChipSizeError(
                    small['path'].iloc[0],
                    f'is {small["height"].iloc[0]} x {small["width"].iloc[0]} pixels, '
                    f'smaller than the chip size {chip_size}',
                )
        names = self._band_names(index, band_names)
        self.band_positions = resolve_bands(bands, names, str(root))
        label_map = None
        multilabel = index.attrs['layout'] == 'bigearthnet'
        if multilabel:
            if bigearthnet_classes not in BigEarthNet.class_sets:
                raise GeosslInputError(
                    'bigearthnet_classes', f'is {bigearthnet_classes}, not 19 or 43'
                )
            classes = classes or BigEarthNet.class_sets[bigearthnet_classes]
            label_map = BIGEARTHNET_43_TO_19 if bigearthnet_classes == 19 else None
        classes = list(classes or class_names(index['label']))
        if not classes and index['label'].notna().any():
            raise DatasetLayoutError(root, 'has labels but no class names')
        super().__init__(
            index,
            classes,
            multilabel,
            [names[p] for p in self.band_positions],
            label_map,
            reflectance_offset,
        )

    def _band_names(
        self, index: gpd.GeoDataFrame, given: Sequence[str] | None
    ) -> list[str]:
        if given is not None:
            if len(given) != self.band_count:
                raise BandMismatchError(
                    'band_names',
                    f'lists {len(given)} names but {self.root} has '
                    f'{self.band_count} bands',
                )
            return list(given)
        stored = index['band_names'].dropna()
        if len(stored):
            return str(_common_value(index, 'band_names')).split(',')
        warnings.warn(self._unnamed_bands(index), UserWarning, stacklevel=3)
        return numbered_bands(self.band_count)

    def _unnamed_bands(self, index: gpd.GeoDataFrame) -> str:
        """What to do about rasters that do not name their bands."""
        message = (
            f'{self.root}: the rasters do not name their bands, so a model trained '
            f'on them knows them as 1 to {self.band_count} and maps only rasters '
            'whose bands are unnamed too; name them with --data.band_names'
        )
        classes = set(class_names(index['label']))
        eurosat_ms = (
            self.band_count == len(EuroSAT.all_band_names)
            and set(index['width']) == set(index['height']) == {64}
            and bool(classes)
            and classes <= EUROSAT_CLASSES
        )
        if eurosat_ms:
            message += (
                '. These look like EuroSAT-MS, whose band order has B8A last: '
                f'--data.band_names "[{", ".join(EuroSAT.all_band_names)}]" '
                '(as --config eurosat-ms sets)'
            )
        return message

    def read_image(self, position: int) -> Tensor:
        """Read the pixels of one sample (see :func:`geossl.data.raster.read_sample`).

        Args:
            position: the sample's position in the dataset.

        Returns:
            float32 ``C x H x W`` raw values.
        """
        path = Path(self.index['path'].iloc[position])
        image = read_sample(
            path,
            self.band_count,
            self.band_positions,
            self.chip_size,
            self.nodata,
            float(self.offsets[position]),
        )
        return torch.from_numpy(image)
