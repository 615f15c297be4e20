"""Scenes plus a labels file: labelled chips around the labels, unlabelled elsewhere.

A *scene* is one multiband raster, or one file per band sharing a name stem at mixed
resolutions (``T18SVG_20160112_B02.tif``, ``..._B8A.tif``, as in a Sentinel-2
granule). Each scene is read through a TorchGeo
:class:`~torchgeo.datasets.RasterDataset`, which resamples every band bilinearly onto
the finest band's grid (10 m for Sentinel-2). Chips are aligned to that grid:

* labelled chips are centred on each labelled point (moved inside the scene when the
  point is near its edge), and cover each labelled polygon with the grid chips whose
  centre lies inside it (or one chip on the polygon when it is smaller than a chip);
* unlabelled chips are the cells of TorchGeo's
  :class:`~torchgeo.samplers.GriddedPatchSampler` that overlap no labelled chip, so no
  labelled pixel is seen again as unlabelled data.

Location is each chip's centre; time is the scene's acquisition time read by
:class:`~geossl.data.metadata.MetadataReader`. The chip list is a
:class:`~geossl.data.datasets.GeoClassificationDataset` index, so splits and the
DataModule treat a scene like any other source, and ``geossl index --labels`` writes
it as a GeoPackage of chip footprints.
"""

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import torch
from torch import Tensor
from torchgeo.datasets import RasterDataset
from torchgeo.datasets.utils import sort_sentinel2_bands
from torchgeo.samplers import GriddedPatchSampler

from geossl.data.bands import numbered_bands, resolve_bands
from geossl.data.columns import BOUNDS_COLUMNS, class_names
from geossl.data.datasets import GeoClassificationDataset
from geossl.data.labels import read_labels
from geossl.data.masks import MASK_BAND, MASK_FILE_REGEX, PixelMask
from geossl.data.metadata import (
    MetadataReader,
    centre_lonlat,
    crs_to_text,
    footprint_wgs84,
    reader_settings,
)
from geossl.data.raster import (
    NodataPolicy,
    apply_nodata_policy,
    apply_reflectance_offset,
    describe,
    invalid_pixels,
    open_raster,
)
from geossl.data.reflectance import declared_offset
from geossl.data.stac import ItemScene, is_stac, stac_scenes
from geossl.errors import (
    BandMismatchError,
    ChipSizeError,
    DatasetLayoutError,
    GeosslInputError,
    LabelsFileError,
    MissingCRSError,
    RasterReadError,
    reading,
)

#: Per-band file names, ``<stem>_<band>.<ext>`` with a Sentinel-2 band name. The
#: ``band`` group is what TorchGeo swaps to find a scene's other band files.
BAND_FILE_REGEX = (
    r'^(?P<stem>.+)_(?P<band>B(?:0[1-9]|1[0-2]|8A))\.(?:tif|tiff|jp2|vrt)$'
)

#: File suffixes read as scene rasters.
SCENE_SUFFIXES = ('.tif', '.tiff', '.jp2', '.vrt')

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True)
class Scene:
    """One scene's files and the grid its chips are cut on.

    Attributes:
        name: the file stem shared by the scene's files.
        files: one multiband file, or one file per band in band order.
        band_names: names of the bands in order.
        per_band: True if ``files`` holds one file per band.
        crs: the CRS as text.
        res: (x, y) pixel size of the finest band.
        bounds: (minx, miny, maxx, maxy) that every band covers, on the finest grid.
        nodata: each band's declared nodata value, or None.
        mask: the scene's mask of invalid pixels (an ``SCL`` file beside per-band
            files, or an ``SCL`` band), if it has one.
        reflectance_offset: the offset the scene's data declares, or None (see
            :mod:`geossl.data.reflectance`).
        time: the acquisition time its STAC item gives (which wins over the
            metadata reader), or None.
        cloud_cover: its STAC item's ``eo:cloud_cover`` in percent, or None.
        footprint: its STAC item's geometry in WGS 84 (where it has data), or None.
    """

    name: str
    files: tuple[Path, ...]
    band_names: tuple[str, ...]
    per_band: bool
    crs: str
    res: tuple[float, float]
    bounds: Bounds
    nodata: tuple[float | None, ...]
    mask: PixelMask | None = None
    reflectance_offset: float | None = None
    time: datetime | None = None
    cloud_cover: float | None = None
    footprint: shapely.Geometry | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the scene in pixels of the finest grid."""
        minx, miny, maxx, maxy = self.bounds
        return round((maxy - miny) / self.res[1]), round((maxx - minx) / self.res[0])

    def check_fits(self, size: int) -> None:
        """Refuse a chip (or window) size larger than the scene.

        Args:
            size: chip width and height in pixels of the finest band.

        Raises:
            ChipSizeError: if the scene is smaller than ``size`` either way.
        """
        height, width = self.shape
        if height < size or width < size:
            raise ChipSizeError(
                self.files[0],
                f'scene {self.name} is {height} x {width} pixels, smaller than the '
                f'chip size {size}',
            )


def find_scenes(paths: str | Path | Sequence[str | Path]) -> list[Scene]:
    """Find the scenes of raster files, folders or STAC items.

    In a folder, files named ``<stem>_<band>.<ext>`` are grouped by stem into
    per-band scenes; every other raster is a multiband scene of its own. Each item
    of a STAC source (see :mod:`geossl.data.stac`) is a per-band scene.

    Args:
        paths: a raster file, a folder of rasters or a STAC source, or several.

    Returns:
        The scenes, sorted by name within each path.

    Raises:
        DatasetLayoutError: if a path holds no raster, or two scenes have the same
            name.
        RasterReadError: if a file is empty or unreadable.
        MissingCRSError: if a file has no CRS.
        BandMismatchError: if a scene's files disagree on CRS or do not overlap.
    """
    if isinstance(paths, str | Path):
        return _scenes_in(paths)
    scenes: dict[str, Scene] = {}
    for path in paths:
        for scene in _scenes_in(path):
            if scene.name in scenes:
                raise DatasetLayoutError(
                    scene.files[0],
                    f'scene {scene.name} is also in {scenes[scene.name].files[0]}; '
                    'scene names must differ',
                )
            scenes[scene.name] = scene
    return list(scenes.values())


def _scenes_in(source: str | Path) -> list[Scene]:
    if is_stac(source):
        return [_item_scene(item) for item in stac_scenes(str(source))]
    path = Path(source)
    if path.is_file():
        return [_multiband_scene(path)]
    if not path.is_dir():
        raise DatasetLayoutError(path, 'is neither a folder nor a raster file')
    groups: dict[str, list[Path]] = {}
    masks: dict[str, Path] = {}
    scenes = []
    for file in sorted(path.iterdir()):
        if file.suffix.lower() not in SCENE_SUFFIXES:
            continue
        match = re.match(BAND_FILE_REGEX, file.name)
        mask = re.match(MASK_FILE_REGEX, file.name)
        if match:
            groups.setdefault(match['stem'], []).append(file)
        elif mask:
            masks[mask['stem']] = file
        else:
            scenes.append(_multiband_scene(file))
    for stem, files in groups.items():
        files.sort(key=sort_sentinel2_bands)
        names = tuple(sort_sentinel2_bands(f).replace('B08A', 'B8A') for f in files)
        scene = _scene(stem, tuple(files), names, per_band=True)
        if stem in masks:
            scene = replace(scene, mask=PixelMask(masks.pop(stem)))
        scenes.append(scene)
    # A mask file without band files of its own is a scene like any other raster.
    scenes.extend(_multiband_scene(file) for file in masks.values())
    if not scenes:
        raise DatasetLayoutError(
            path, f'holds no scene rasters ({", ".join(SCENE_SUFFIXES)})'
        )
    return sorted(scenes, key=lambda scene: scene.name)


def _item_scene(item: ItemScene) -> Scene:
    (scene,) = _scenes_in(item.folder)
    return replace(
        scene, time=item.time, cloud_cover=item.cloud_cover, footprint=item.footprint
    )


def _multiband_scene(file: Path) -> Scene:
    shape = describe(file)
    names = shape.band_names or tuple(numbered_bands(shape.bands))
    scene = _scene(file.stem, (file,), names, per_band=False)
    if MASK_BAND in names:
        scene = replace(scene, mask=PixelMask(file, names.index(MASK_BAND) + 1))
    return scene


def _scene(
    name: str, files: tuple[Path, ...], band_names: tuple[str, ...], per_band: bool
) -> Scene:
    sources = []
    for file in files:
        with open_raster(file) as src:
            if src.crs is None:
                raise MissingCRSError(
                    file, 'has no CRS; a scene needs one to place its labels and chips'
                )
            sources.append((src.crs, src.res, src.bounds, src.nodatavals))
    crs = sources[0][0]
    for file, (other, *_) in zip(files, sources, strict=True):
        if other != crs:
            raise BandMismatchError(file, f'is in {other}, unlike {files[0].name}')
    finest = min(sources, key=lambda source: source[1][0])
    res = finest[1]
    if per_band:
        nodata = tuple(source[3][0] for source in sources)
    else:
        nodata = tuple(sources[0][3])
    # Keep the area every band covers, shrunk onto the finest band's pixel grid.
    origin_x, origin_y = finest[2].left, finest[2].top
    left = max(source[2].left for source in sources)
    right = min(source[2].right for source in sources)
    bottom = max(source[2].bottom for source in sources)
    top = min(source[2].top for source in sources)
    bounds = (
        origin_x + math.ceil((left - origin_x) / res[0] - 1e-6) * res[0],
        origin_y - math.floor((origin_y - bottom) / res[1] + 1e-6) * res[1],
        origin_x + math.floor((right - origin_x) / res[0] + 1e-6) * res[0],
        origin_y - math.ceil((origin_y - top) / res[1] - 1e-6) * res[1],
    )
    if bounds[2] <= bounds[0] or bounds[3] <= bounds[1]:
        raise BandMismatchError(files[0], f'the files of scene {name} do not overlap')
    offset = declared_offset(files, band_names, skip=(MASK_BAND,))
    return Scene(
        name,
        files,
        band_names,
        per_band,
        crs_to_text(crs),
        res,
        bounds,
        nodata,
        reflectance_offset=offset,
    )


class SceneRaster(RasterDataset):
    """One scene as a TorchGeo raster dataset, every band on the finest grid.

    Attributes:
        reflectance_offset: the offset added to the valid pixels read: the one the
            scene declares, else the one given.
    """

    def __init__(
        self, scene: Scene, bands: Sequence[str], reflectance_offset: float = 0.0
    ) -> None:
        """Initialise the dataset.

        Args:
            scene: the scene to read.
            bands: names of the bands to read, in output order.
            reflectance_offset: the offset if the scene declares none.
        """
        self.scene = scene
        declared = scene.reflectance_offset
        self.reflectance_offset = reflectance_offset if declared is None else declared
        self.all_bands = list(scene.band_names)
        self.separate_files = scene.per_band
        if scene.per_band:
            self.filename_regex = BAND_FILE_REGEX
        super().__init__(paths=[scene.files[0]], res=scene.res, bands=list(bands))
        self.band_nodata = [scene.nodata[self.all_bands.index(b)] for b in self.bands]

    def footprint_from_datasource(self, datasource: object) -> shapely.Polygon:
        """The area every band covers, so samplers stay where all bands have data.

        Args:
            datasource: the open raster (unused: the scene knows its bounds).

        Returns:
            The scene's bounds as a polygon in its CRS.
        """
        return shapely.box(*self.scene.bounds)

    def read_chip(self, bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
        """Read the pixels inside ``bounds`` on the scene's grid.

        Args:
            bounds: (minx, miny, maxx, maxy) in the scene's CRS.

        Returns:
            float32 ``C x H x W`` raw values plus the reflectance offset, and the
            mask of nodata or NaN pixels.
        """
        minx, miny, maxx, maxy = bounds
        xres, yres = self.scene.res
        files = self.scene.files
        source = files[0] if len(files) == 1 else files[0].parent
        with reading(source, 'a raster', RasterReadError):
            image = self[minx:maxx:xres, miny:maxy:yres]['image'].numpy()
        invalid = [
            invalid_pixels(band, nodata)
            for band, nodata in zip(image, self.band_nodata, strict=True)
        ]
        invalid = np.stack(invalid)
        apply_reflectance_offset(image, invalid, self.reflectance_offset)
        return image, invalid


@dataclass(frozen=True)
class _Chip:
    sample_id: str
    scene: int
    bounds: Bounds
    label: str | None = None
    feature: int | None = None
    cloud_fraction: float | None = None


class _ChipGrid:
    """Chip positions on one scene's pixel grid."""

    def __init__(self, scene: Scene, size: int) -> None:
        self.scene = scene
        self.width = size * scene.res[0]
        self.height = size * scene.res[1]
        scene.check_fits(size)

    def around(self, x: float, y: float) -> Bounds:
        """The chip centred on (x, y), snapped to the grid and moved inside the scene.

        Returns:
            The chip's bounds.
        """
        minx, miny, maxx, maxy = self.scene.bounds
        xres, yres = self.scene.res
        left = minx + round((x - self.width / 2 - minx) / xres) * xres
        bottom = miny + round((y - self.height / 2 - miny) / yres) * yres
        left = min(max(left, minx), maxx - self.width)
        bottom = min(max(bottom, miny), maxy - self.height)
        return left, bottom, left + self.width, bottom + self.height

    def cell_id(self, bounds: Bounds) -> str:
        """Name a grid cell by its row (from the top) and column.

        Returns:
            ``r<row>c<column>`` in pixels of the scene grid.
        """
        minx, _, _, maxy = self.scene.bounds
        column = round((bounds[0] - minx) / self.scene.res[0])
        row = round((maxy - bounds[3]) / self.scene.res[1])
        return f'r{row}c{column}'


def _grid_cells(raster: SceneRaster, size: int, stride: int) -> list[Bounds]:
    """The cells of TorchGeo's gridded sampler, tiling the scene from its top-left.

    The region handed to the sampler is cut to a whole number of strides, so no
    cell overhangs the area every band covers and cells start at the top-left pixel.
    """
    minx, _, _, maxy = raster.scene.bounds
    height, width = raster.scene.shape
    xres, yres = raster.scene.res
    used_width = ((width - size) // stride * stride + size) * xres
    used_height = ((height - size) // stride * stride + size) * yres
    region = shapely.box(minx, maxy - used_height, minx + used_width, maxy)
    sampler = GriddedPatchSampler(raster, size=size, stride=stride, roi=region)
    return [(x.start, y.start, x.stop, y.stop) for x, y in sampler]


def _inside(cells: list[Bounds], scene: Scene) -> list[Bounds]:
    """The cells inside a scene's footprint (where its STAC item has data)."""
    footprint = gpd.GeoSeries([scene.footprint], crs=4326).to_crs(scene.crs).iloc[0]
    # Half a pixel of slack for the rounding of the footprint's reprojection.
    footprint = footprint.buffer(max(scene.res) / 2)
    boxes = shapely.box(*np.asarray(cells).T) if cells else []
    inside = shapely.covers(footprint, boxes)
    return [cell for cell, keep in zip(cells, inside, strict=True) if keep]


def _label_chips(
    position: int,
    grid: _ChipGrid,
    cells: list[Bounds],
    labels: gpd.GeoDataFrame,
) -> list[_Chip]:
    """Labelled chips of one scene."""
    scene = grid.scene
    area = shapely.box(*scene.bounds)
    labels = labels.to_crs(scene.crs)
    inside = labels.intersects(area)
    chips = []
    polygons = labels[inside & (labels.geom_type == 'Polygon')]
    if len(polygons):
        centres = gpd.GeoDataFrame(
            {'cell': range(len(cells))},
            geometry=[shapely.box(*cell).centroid for cell in cells],
            crs=scene.crs,
        )
        covered = centres.sjoin(polygons, predicate='within')
        for cell, feature, label in zip(
            covered['cell'], covered['feature'], covered['label'], strict=True
        ):
            bounds = cells[cell]
            sample_id = f'{scene.name}/label-{feature}/{grid.cell_id(bounds)}'
            chips.append(_Chip(sample_id, position, bounds, label, int(feature)))
        small = polygons[~polygons['feature'].isin(covered['feature'])]
    else:
        small = polygons
    points = labels[inside & (labels.geom_type == 'Point')]
    for row in (*small.itertuples(), *points.itertuples()):
        centre = row.geometry.representative_point()
        if not area.contains(centre):
            continue
        bounds = grid.around(centre.x, centre.y)
        sample_id = f'{scene.name}/label-{row.feature}-{row.part}'
        chips.append(_Chip(sample_id, position, bounds, row.label, int(row.feature)))
    # Unique ids keep repeated polygon cells of one multi-polygon from doubling.
    return list({chip.sample_id: chip for chip in chips}.values())


def _unlabelled_chips(
    position: int, grid: _ChipGrid, cells: list[Bounds], labelled: list[_Chip]
) -> list[_Chip]:
    """Grid cells of one scene that overlap no labelled chip."""
    xres, yres = grid.scene.res
    # Shrink labelled chips by half a pixel so that cells merely touching them stay.
    taken = shapely.STRtree(
        [
            shapely.box(
                minx + xres / 2, miny + yres / 2, maxx - xres / 2, maxy - yres / 2
            )
            for minx, miny, maxx, maxy in (chip.bounds for chip in labelled)
        ]
    )
    boxes = [shapely.box(*cell) for cell in cells]
    overlapping = set(taken.query(boxes, predicate='intersects')[0].tolist())
    return [
        _Chip(f'{grid.scene.name}/{grid.cell_id(cell)}', position, cell)
        for i, cell in enumerate(cells)
        if i not in overlapping
    ]


class SceneDataset(GeoClassificationDataset):
    """Chips from one or more scenes, labelled by a vector file of points or polygons.

    Args:
        scenes: raster files or folders (see :func:`find_scenes`); every scene must
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
        max_cloud_fraction: in scenes with a mask (see :class:`Scene`), unlabelled
            chips with a larger share of invalid pixels are left out, so that no
            cloud becomes a pseudo-label; labelled ones are kept with a warning
            naming them. Each chip's share is the index's ``cloud_fraction``.
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
    ) -> list[_Chip]:
        chips = []
        for position, raster in enumerate(self.rasters):
            grid = _ChipGrid(raster.scene, size)
            cells = _grid_cells(raster, size, stride)
            if raster.scene.footprint is not None:
                cells = _inside(cells, raster.scene)
            labelled = []
            if features is not None:
                labelled = _label_chips(position, grid, cells, features)
            chips += labelled + _unlabelled_chips(position, grid, cells, labelled)
        return chips

    def _clear_of_clouds(
        self, chips: list[_Chip], size: int, limit: float
    ) -> list[_Chip]:
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
        chips: list[_Chip], limit: int | None, seed: int
    ) -> list[_Chip]:
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
        chips: list[_Chip],
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
