"""Scenes plus a labels file: labelled chips around the labels, unlabelled elsewhere.

:class:`SceneDataset` finds the scenes (:mod:`geossl.data.scene_files`), reads each
through TorchGeo (:mod:`geossl.data.scene_raster`) and places its chips
(:mod:`geossl.data.chips`). Location is each chip's centre; time is the scene's
acquisition time read by :class:`~geossl.data.metadata.MetadataReader`. The chip
list is a :class:`~geossl.data.datasets.GeoClassificationDataset` index, so splits
and the DataModule treat a scene like any other source, and
``geossl index --labels`` writes it as a GeoPackage of chip footprints.
"""

import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from geossl.data.bands import resolve_bands
from geossl.data.chips import (
    Chip,
    ChipGrid,
    cells_inside,
    grid_cells,
    label_chips,
    unlabelled_chips,
)
from geossl.data.columns import BOUNDS_COLUMNS, class_names
from geossl.data.datasets import GeoClassificationDataset
from geossl.data.labels import read_labels
from geossl.data.metadata import (
    MetadataReader,
    centre_lonlat,
    footprint_wgs84,
    reader_settings,
)
from geossl.data.pixels import NodataPolicy, apply_nodata_policy
from geossl.data.scene_files import find_scenes
from geossl.data.scene_raster import SceneRaster
from geossl.errors import (
    BandMismatchError,
    GeosslInputError,
    LabelsFileError,
)


class SceneDataset(GeoClassificationDataset):
    """Chips from one or more scenes, labelled by a vector file of points or polygons.

    Args:
        scenes: raster files or folders (see :func:`~.find_scenes`); every scene must
            have the same bands.
        labels: vector file of labelled points or polygons; None for unlabelled
            chips only (e.g. to map or pre-train).
        class_column: the labels file's class column.
        labels_layer: layer of a multi-layer labels file; None for the first.
        chip_size: chip width and height in pixels of the finest band.
        stride: step of the unlabelled chip grid in pixels; None for ``chip_size``.
        unlabelled_chips: keep at most this many unlabelled chips (a seeded random
            choice); None keeps every grid cell.
        bands: bands to return, by name or 0-based position; None for all.
        classes: class names in target order; None for the sorted label names.
        nodata: refuse (``'error'``) or zero-fill (``'zero'``) nodata/NaN pixels.
        reader: how to read each scene's acquisition time.
        seed: seed of the unlabelled chip choice.
        max_cloud_fraction: in scenes with a mask (see
            :class:`~geossl.data.scene_files.Scene`), unlabelled chips with a
            larger share of invalid pixels are left out, so that no cloud becomes a
            pseudo-label; labelled ones are kept with a warning naming them. Each
            chip's share is the index's ``cloud_fraction``.
        reflectance_offset: the offset of scenes whose data declares none (see
            :mod:`geossl.data.reflectance`).
    """

    def __init__(
        self,
        scenes: str | Path | Sequence[str | Path],
        labels: str | Path | None = None,
        class_column: str = 'class',
        labels_layer: str | None = None,
        chip_size: int = 64,
        stride: int | None = None,
        unlabelled_chips: int | None = None,
        bands: Sequence[str | int] | None = None,
        classes: Sequence[str] | None = None,
        nodata: NodataPolicy = 'error',
        reader: MetadataReader | None = None,
        seed: int = 0,
        max_cloud_fraction: float = 0.1,
        reflectance_offset: float = 0.0,
    ) -> None:
        if not 0 <= max_cloud_fraction <= 1:
            raise GeosslInputError(
                'max_cloud_fraction', f'is {max_cloud_fraction:g}; it must be in 0..1'
            )
        paths = [scenes] if isinstance(scenes, str | Path) else list(scenes)
        found = find_scenes(paths)
        names = found[0].band_names
        for scene in found[1:]:
            if scene.band_names != names:
                raise BandMismatchError(
                    scene.files[0],
                    f'scene {scene.name} has bands {", ".join(scene.band_names)}, '
                    f'unlike {found[0].name} ({", ".join(names)})',
                )
        positions = resolve_bands(bands, names, str(found[0].files[0]))
        band_names = [names[p] for p in positions]
        self.scenes = found
        self.rasters = [
            SceneRaster(scene, band_names, reflectance_offset) for scene in found
        ]
        self.nodata: NodataPolicy = nodata
        reader = reader or MetadataReader()
        features = read_labels(labels, class_column, labels_layer) if labels else None
        chips = self._chips(chip_size, stride or chip_size, features)
        if features is not None:
            used = {chip.feature for chip in chips if chip.feature is not None}
            if not used:
                raise LabelsFileError(
                    labels,
                    'no label falls inside the scenes '
                    f'({", ".join(scene.name for scene in found)})',
                )
            total = features['feature'].nunique()
            if len(used) < total:
                warnings.warn(
                    f'{labels}: {total - len(used)} of {total} labels lie outside '
                    'every scene and are ignored',
                    UserWarning,
                    stacklevel=2,
                )
        chips = self._clear_of_clouds(chips, chip_size, max_cloud_fraction)
        chips = self._limit_unlabelled(chips, unlabelled_chips, seed)
        index = self._index(chips, chip_size, band_names, reader)
        index.attrs.update(
            source='; '.join(str(Path(p).resolve()) for p in paths)
            + (f' + {Path(labels).resolve()}' if labels else ''),
            layout='scene',
            reader=reader_settings(reader),
        )
        super().__init__(
            index,
            classes or class_names(index['label']),
            multilabel=False,
            band_names=band_names,
            reflectance_offset=reflectance_offset,
        )
        self._chip_scenes = self.index['scene'].to_numpy()
        self._chip_bounds = self.index[list(BOUNDS_COLUMNS)].to_numpy(dtype=float)

    def _chips(
        self, size: int, stride: int, features: gpd.GeoDataFrame | None
    ) -> list[Chip]:
        chips = []
        for position, raster in enumerate(self.rasters):
            grid = ChipGrid(raster.scene, size)
            cells = grid_cells(raster, size, stride)
            if raster.scene.footprint is not None:
                cells = cells_inside(cells, raster.scene)
            labelled = []
            if features is not None:
                labelled = label_chips(position, grid, cells, features)
            chips += labelled + unlabelled_chips(position, grid, cells, labelled)
        return chips

    def _clear_of_clouds(
        self, chips: list[Chip], size: int, limit: float
    ) -> list[Chip]:
        """Each chip's share of masked pixels; unlabelled chips above ``limit`` out."""
        chips = list(chips)
        for position, scene in enumerate(self.scenes):
            if scene.mask is None:
                continue
            own = [i for i, chip in enumerate(chips) if chip.scene == position]
            masks = scene.mask.invalid_each(
                [chips[i].bounds for i in own], (size, size)
            )
            for i, masked in zip(own, masks, strict=True):
                chips[i] = replace(chips[i], cloud_fraction=float(masked.mean()))
        kept, cloudy = [], []
        for chip in chips:
            if chip.cloud_fraction is None or chip.cloud_fraction <= limit:
                kept.append(chip)
            elif chip.label is not None:
                kept.append(chip)
                cloudy.append(chip)
        dropped = len(chips) - len(kept)
        if dropped:
            warnings.warn(
                f'{dropped} unlabelled chips with more than {limit:.0%} clouds or '
                'other masked pixels are left out of the unlabelled pool',
                UserWarning,
                stacklevel=3,
            )
        if cloudy:
            names = ', '.join(
                f'{c.sample_id} ({c.label}, {c.cloud_fraction:.0%})' for c in cloudy
            )
            warnings.warn(
                f'labelled chips with more than {limit:.0%} clouds or other masked '
                f'pixels (kept): {names}',
                UserWarning,
                stacklevel=3,
            )
        return kept

    @staticmethod
    def _limit_unlabelled(
        chips: list[Chip], limit: int | None, seed: int
    ) -> list[Chip]:
        unlabelled = [i for i, chip in enumerate(chips) if chip.label is None]
        if limit is None or len(unlabelled) <= limit:
            return chips
        generator = np.random.default_rng(seed)
        dropped = set(
            generator.choice(unlabelled, len(unlabelled) - limit, replace=False)
        )
        return [chip for i, chip in enumerate(chips) if i not in dropped]

    def _index(
        self,
        chips: list[Chip],
        size: int,
        band_names: list[str],
        reader: MetadataReader,
    ) -> gpd.GeoDataFrame:
        times = [
            scene.time if scene.time is not None else reader.read(scene.files[0]).time
            for scene in self.scenes
        ]
        rows = []
        for chip in chips:
            scene = self.scenes[chip.scene]
            lon, lat = centre_lonlat(scene.crs, chip.bounds)
            time = times[chip.scene]
            rows.append(
                {
                    'sample_id': chip.sample_id,
                    'path': str(scene.files[0].resolve()),
                    'label': chip.label,
                    'lon': lon,
                    'lat': lat,
                    'datetime': pd.Timestamp(time) if time is not None else pd.NaT,
                    'crs': scene.crs,
                    **dict(zip(BOUNDS_COLUMNS, chip.bounds, strict=True)),
                    'width': size,
                    'height': size,
                    'bands': len(band_names),
                    'band_names': ','.join(band_names),
                    'scene': chip.scene,
                    'feature': chip.feature,
                    'cloud_fraction': np.nan
                    if chip.cloud_fraction is None
                    else chip.cloud_fraction,
                    'reflectance_offset': np.nan
                    if scene.reflectance_offset is None
                    else scene.reflectance_offset,
                    'scene_cloud_cover': np.nan
                    if scene.cloud_cover is None
                    else scene.cloud_cover,
                    'geometry': footprint_wgs84(scene.crs, chip.bounds),
                }
            )
        index = gpd.GeoDataFrame(pd.DataFrame(rows), geometry='geometry', crs=4326)
        index['datetime'] = pd.to_datetime(index['datetime'], utc=True)
        index['feature'] = index['feature'].astype('Int64')
        return index

    def read_image(self, position: int) -> Tensor:
        """Read one chip's pixels through its scene's TorchGeo dataset.

        Args:
            position: the chip's position in the dataset.

        Returns:
            float32 ``C x H x W`` raw values.
        """
        raster = self.rasters[self._chip_scenes[position]]
        image, invalid = raster.read_chip(tuple(self._chip_bounds[position]))
        source = (
            f'{raster.scene.files[0]} (chip {self.index["sample_id"].iat[position]})'
        )
        return torch.from_numpy(
            apply_nodata_policy(image, invalid, self.nodata, source)
        )
