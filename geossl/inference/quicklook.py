"""A PNG quick-look of a mapped scene: true colour beside the class map, a legend."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import shapely
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.patheffects import Normal, Stroke
from rasterio.enums import Resampling
from rasterio.windows import from_bounds

from geossl.atomic import atomic_output
from geossl.data.remote import read_remote
from geossl.data.scene_files import Bounds, Scene
from geossl.inference.map_writer import NODATA_CLASS

#: The colour of pixels the scene's mask marks invalid, over the true colour.
MASKED_COLOUR = 'magenta'

#: Bands shown as red, green and blue when the scene has them.
TRUE_COLOUR = ('B04', 'B03', 'B02')


def _read_band(
    scene: Scene, band: str, bounds: Bounds, shape: tuple[int, int]
) -> np.ndarray:
    position = scene.band_names.index(band)
    path = scene.files[position] if scene.per_band else scene.files[0]
    index = 1 if scene.per_band else position + 1
    with rasterio.open(path) as src:
        window = from_bounds(*bounds, src.transform)
        values = read_remote(
            [path],
            lambda: src.read(
                index, window=window, out_shape=shape, resampling=Resampling.average
            ),
        )
        return values.astype(np.float32)


def stretch(band: np.ndarray, low: float = 2, high: float = 98) -> np.ndarray:
    """QGIS's default contrast: a cumulative count cut of one band, to 0..1.

    Args:
        band: the band's values; zeros are no data and are left out.
        low: the percentile shown black.
        high: the percentile shown white.

    Returns:
        The band scaled so that its ``low``-``high`` percentiles span 0..1.
    """
    valid = band[band > 0]
    if not valid.size:
        return np.zeros_like(band)
    bottom, top = np.percentile(valid, [low, high])
    return np.clip((band - bottom) / max(top - bottom, 1e-6), 0, 1)


def save_quicklook(
    scene: Scene,
    class_map: str | Path,
    class_names: Sequence[str],
    colours: Sequence[str],
    path: str | Path,
    max_size: int = 800,
    region: shapely.Geometry | None = None,
) -> Path:
    """Draw the scene in true colour (or its first bands) beside its class map.

    Each band of the true-colour panel is stretched on its own from its 2nd to its
    98th percentile, as QGIS shows a raster by default, so that the haze of an L1C
    scene does not turn it blue.

    Args:
        scene: the mapped scene.
        class_map: its class map (read at reduced size from the overviews); both
            panels show its extent.
        class_names: names of the classes.
        colours: their colours.
        path: the PNG to write (written whole, then renamed).
        max_size: longest side of each panel in pixels.
        region: a region of interest in the scene's CRS, outlined on both panels.
            Pixels the scene's mask marks invalid are shaded on the true colour.

    Returns:
        The path written.
    """
    path = Path(path)
    with rasterio.open(class_map) as src:
        bounds = tuple(src.bounds)
        height, width = src.shape
        scale = min(1.0, max_size / max(height, width))
        shape = (max(1, round(height * scale)), max(1, round(width * scale)))
        classes = src.read(1, out_shape=shape, resampling=Resampling.nearest)
    bands = [b for b in TRUE_COLOUR if b in scene.band_names]
    if len(bands) < 3:
        bands = list(scene.band_names[:3]) if len(scene.band_names) >= 3 else []
        bands = bands or [scene.band_names[0]] * 3
    rgb = np.dstack([stretch(_read_band(scene, b, bounds, shape)) for b in bands])
    # The object-oriented API draws on its own canvas: no pyplot, no backend to set.
    # The constrained layout keeps titles and legend inside the figure.
    figure = Figure(figsize=(12, 6.8), layout='constrained')
    figure.get_layout_engine().set(h_pad=0.1)
    left, right = figure.subplots(1, 2)
    left.imshow(rgb)
    if scene.mask is not None:
        masked = scene.mask.invalid(bounds, shape)
        overlay = np.zeros((*shape, 4), dtype=np.float32)
        overlay[masked] = to_rgba(MASKED_COLOUR, alpha=0.6)
        left.imshow(overlay, interpolation='nearest')
    left.set_title(f'{scene.name} ({", ".join(bands)}, 2-98 % stretch)')
    shown = np.ma.masked_equal(classes, NODATA_CLASS)
    right.imshow(
        shown,
        cmap=ListedColormap(list(colours)),
        vmin=-0.5,
        vmax=len(colours) - 0.5,
        interpolation='nearest',
    )
    right.set_title('classes (nodata blank)')
    handles = [
        Patch(color=c, label=n) for n, c in zip(class_names, colours, strict=True)
    ]
    if scene.mask is not None:
        handles.append(Patch(color=MASKED_COLOUR, alpha=0.6, label='masked (clouds)'))
    if region is not None:
        for axes in (left, right):
            _outline(axes, region, bounds, shape)
        handles.append(Line2D([], [], color='black', label='region of interest'))
    for axes in (left, right):
        axes.set_axis_off()
    figure.legend(
        handles=handles,
        loc='outside lower center',
        ncol=min(len(handles), 8),
        frameon=False,
    )
    with atomic_output(path) as partial:
        figure.savefig(partial, dpi=100)
    return path


def _outline(
    axes: Axes, region: shapely.Geometry, bounds: Bounds, shape: tuple[int, int]
) -> None:
    """Draw a region's boundary on a panel of ``shape`` pixels over ``bounds``."""
    minx, miny, maxx, maxy = bounds
    clipped = region.intersection(shapely.box(*bounds)).boundary
    for line in getattr(clipped, 'geoms', [clipped]):
        x, y = np.asarray(line.coords).T if not line.is_empty else ([], [])
        columns = (np.asarray(x) - minx) / (maxx - minx) * shape[1] - 0.5
        rows = (maxy - np.asarray(y)) / (maxy - miny) * shape[0] - 0.5
        # A white halo keeps the line visible over dark water and forest.
        axes.plot(
            columns,
            rows,
            color='black',
            linewidth=1.2,
            path_effects=[Stroke(linewidth=3, foreground='white'), Normal()],
            scalex=False,
            scaley=False,
        )
