"""A PNG quick-look of a mapped scene: true colour beside the class map, a legend."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from rasterio.enums import Resampling
from rasterio.windows import from_bounds

from geossl.atomic import atomic_output
from geossl.data.scene import Scene
from geossl.inference.mapping import NODATA_CLASS

#: Bands shown as red, green and blue when the scene has them.
TRUE_COLOUR = ('B04', 'B03', 'B02')


def _read_band(scene: Scene, band: str, shape: tuple[int, int]) -> np.ndarray:
    position = scene.band_names.index(band)
    path = scene.files[position] if scene.per_band else scene.files[0]
    index = 1 if scene.per_band else position + 1
    with rasterio.open(path) as src:
        window = from_bounds(*scene.bounds, src.transform)
        return src.read(
            index, window=window, out_shape=shape, resampling=Resampling.average
        ).astype(np.float32)


def save_quicklook(
    scene: Scene,
    class_map: str | Path,
    class_names: Sequence[str],
    colours: Sequence[str],
    path: str | Path,
    max_size: int = 800,
) -> Path:
    """Draw the scene in true colour (or its first bands) beside its class map.

    Args:
        scene: the mapped scene.
        class_map: its class map (read at reduced size from the overviews).
        class_names: names of the classes.
        colours: their colours.
        path: the PNG to write (written whole, then renamed).
        max_size: longest side of each panel in pixels.

    Returns:
        The path written.
    """
    path = Path(path)
    height, width = scene.shape
    scale = min(1.0, max_size / max(height, width))
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    bands = [b for b in TRUE_COLOUR if b in scene.band_names]
    if len(bands) < 3:
        bands = list(scene.band_names[:3]) if len(scene.band_names) >= 3 else []
        bands = bands or [scene.band_names[0]] * 3
    rgb = np.dstack([_read_band(scene, band, shape) for band in bands])
    low, high = np.percentile(rgb[rgb > 0], [2, 98]) if (rgb > 0).any() else (0, 1)
    rgb = np.clip((rgb - low) / max(high - low, 1e-6), 0, 1)
    with rasterio.open(class_map) as src:
        classes = src.read(1, out_shape=shape, resampling=Resampling.nearest)
    # The object-oriented API draws on its own canvas: no pyplot, no backend to set.
    figure = Figure(figsize=(12, 6.5))
    left, right = figure.subplots(1, 2)
    left.imshow(rgb)
    left.set_title(f'{scene.name} ({", ".join(bands)})')
    shown = np.ma.masked_equal(classes, NODATA_CLASS)
    right.imshow(
        shown,
        cmap=ListedColormap(list(colours)),
        vmin=-0.5,
        vmax=len(colours) - 0.5,
        interpolation='nearest',
    )
    right.set_title('classes')
    for axes in (left, right):
        axes.set_axis_off()
    figure.legend(
        handles=[
            Patch(color=c, label=n) for n, c in zip(class_names, colours, strict=True)
        ],
        loc='lower center',
        ncol=min(len(class_names), 6),
        frameon=False,
    )
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    with atomic_output(path) as partial:
        figure.savefig(partial, dpi=100)
    return path
