"""Scenes found on disk or in STAC items: their files, bands and grid.

A *scene* is one multiband raster, or one file per band sharing a name stem at mixed
resolutions (``T18SVG_20160112_B02.tif``, ``..._B8A.tif``, as in a Sentinel-2
granule), or a STAC item's band assets (:mod:`geossl.data.stac`). Its grid is the
finest band's (10 m for Sentinel-2); its mask, nodata values and reflectance offset
are read with it.
"""

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import shapely
from torchgeo.datasets.utils import sort_sentinel2_bands

from geossl.data.bands import numbered_bands
from geossl.data.masks import MASK_BAND, MASK_FILE_REGEX, PixelMask
from geossl.data.metadata import (
    crs_to_text,
)
from geossl.data.raster import (
    describe,
    open_raster,
)
from geossl.data.reflectance import declared_offset
from geossl.data.stac import ItemScene, is_stac, stac_scenes
from geossl.errors import (
    BandMismatchError,
    ChipSizeError,
    DatasetLayoutError,
    MissingCRSError,
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
