"""Classify whole scenes into Cloud-Optimized GeoTIFF class maps.

A window of ``chip_size`` slides over the scene's 10 m grid with ``stride``; each
window is read through the scene's TorchGeo dataset (bands resampled onto the grid),
classified in batches on the device, and its class probabilities are added, weighted
by a tent that is highest at the window centre, into a strip of rows. Rows that no
later window touches are divided by their weights and written, so memory holds one
strip of ``chip_size`` rows whatever the scene size. Pixels with no data (NaN, the
declared nodata value, or zero in every band as in Sentinel-2 products) get the
nodata class 255.

The map is written to a temporary tiled GeoTIFF, converted to a Cloud-Optimized
GeoTIFF (DEFLATE, internal overviews, colour table and class names) and renamed into
place only when complete.
"""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
import rasterio.shutil
import torch
from matplotlib.colors import to_rgb
from rasterio.transform import from_origin
from rasterio.windows import Window
from torch import Tensor
from tqdm.auto import tqdm

from geossl.atomic import atomic_output, partial_path
from geossl.data.scene import Scene, SceneRaster
from geossl.errors import BandMismatchError, GeosslInputError
from geossl.tasks.semi_supervised import SemiSupervisedTask

#: Class value of pixels with no data.
NODATA_CLASS = 255

ProbabilityFormat = Literal['uint8', 'float16']


@dataclass(frozen=True)
class MapResult:
    """What a mapping run wrote.

    Attributes:
        class_map: the class map COG.
        probabilities: the probability COG, if asked for.
        pixels: pixels mapped.
        seconds: time spent.
    """

    class_map: Path
    probabilities: Path | None
    pixels: int
    seconds: float


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of windows covering ``length`` pixels, the last flush with the end.

    Args:
        length: pixels to cover.
        size: window size.
        stride: step between windows.

    Returns:
        Sorted, distinct start offsets.
    """
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def tent_weights(size: int) -> np.ndarray:
    """Blending weights of a window: highest at the centre, small but positive at edges.

    Args:
        size: window size.

    Returns:
        ``size x size`` float32 weights.
    """
    offsets = np.arange(size)
    ramp = np.minimum(offsets + 1, size - offsets).astype(np.float32)
    ramp /= ramp.max()
    return np.outer(ramp, ramp)


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse an existing output (unless overwriting) or an unwritable folder.

    Args:
        path: the output file.
        overwrite: replace an existing file.

    Raises:
        GeosslInputError: if the output cannot or must not be written.
    """
    if path.exists() and not overwrite:
        raise GeosslInputError(path, 'exists; pass --overwrite to replace it')
    if path.is_dir():
        raise GeosslInputError(path, 'is a folder, not a file name')
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = partial_path(path, '.write-test')
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise GeosslInputError(path, f'cannot be written ({error.strerror})') from None


class SceneMapper:
    """Slide a trained classifier over scenes and write the maps.

    Args:
        task: the trained task (see :func:`geossl.inference.checkpoint.load_task`).
        chip_size: window size; None for the size the model was trained on.
        stride: step between windows; None for half the window.
        batch_size: windows per forward pass.
        device: where to run the model.
        progress: show a progress bar.
    """

    def __init__(
        self,
        task: SemiSupervisedTask,
        chip_size: int | None = None,
        stride: int | None = None,
        batch_size: int = 64,
        device: str | torch.device = 'cpu',
        progress: bool = True,
    ) -> None:
        self.task = task.eval().to(device)
        self.device = torch.device(device)
        self.chip_size = chip_size or int(task.hparams['chip_size'])
        self.stride = stride if stride is not None else max(1, self.chip_size // 2)
        if self.chip_size <= 0:
            raise GeosslInputError('chip_size', f'is {self.chip_size}; it must be > 0')
        if self.stride <= 0 or self.stride > self.chip_size:
            raise GeosslInputError(
                'stride',
                f'is {self.stride}; it must be in 1..chip size ({self.chip_size}) so '
                'that windows cover every pixel',
            )
        if batch_size <= 0:
            raise GeosslInputError('batch_size', f'is {batch_size}; it must be > 0')
        self.batch_size = batch_size
        self.progress = progress
        self.class_names: list[str] = list(task.hparams['class_names'])
        self.colours: list[str] = list(task.hparams['class_colours'])
        self.band_names: list[str] = list(task.hparams['band_names'])
        self.weights = torch.from_numpy(tent_weights(self.chip_size)).to(self.device)

    def raster(self, scene: Scene) -> SceneRaster:
        """The scene's TorchGeo dataset reading the model's bands, in its order.

        Args:
            scene: the scene.

        Returns:
            The dataset.

        Raises:
            BandMismatchError: if the scene lacks a band of the model.
            ChipSizeError: if the scene is smaller than a window.
        """
        missing = [b for b in self.band_names if b not in scene.band_names]
        if missing:
            raise BandMismatchError(
                scene.files[0],
                f'scene {scene.name} has bands {", ".join(scene.band_names)} but the '
                f'model needs {", ".join(self.band_names)} '
                f'(missing {", ".join(missing)})',
            )
        scene.check_fits(self.chip_size)
        return SceneRaster(scene, self.band_names)

    def _read_strip(self, raster: SceneRaster, top: int) -> tuple[Tensor, Tensor]:
        """One strip of ``chip_size`` rows across the scene, and its no-data mask."""
        minx, _, maxx, maxy = raster.scene.bounds
        yres = raster.scene.res[1]
        bottom = maxy - (top + self.chip_size) * yres
        image, nodata = raster.read_chip((minx, bottom, maxx, maxy - top * yres))
        invalid = nodata.any(axis=0) | (image == 0).all(axis=0)
        image = torch.from_numpy(np.nan_to_num(image)).to(self.device)
        return self.task.views.normalise(image[None])[0], torch.from_numpy(invalid)

    @torch.no_grad()
    def _classify(self, strip: Tensor, invalid: Tensor, columns: list[int]) -> Tensor:
        """Probabilities ``(N, K, c, c)`` of the strip's windows at ``columns``.

        Pixels with no data get NaN.
        """
        size = self.chip_size
        windows = torch.stack([strip[:, :, c : c + size] for c in columns])
        logits = self.task(windows)
        if self.task.hparams['multilabel']:
            probs = logits.sigmoid()
        else:
            probs = logits.softmax(dim=1)
        probs = probs[:, :, None, None].expand(-1, -1, size, size).clone()
        mask = torch.stack([invalid[:, c : c + size] for c in columns]).to(self.device)
        probs[mask[:, None].expand_as(probs)] = float('nan')
        return probs

    def _strips(self, raster: SceneRaster) -> Iterator[tuple[int, int, Tensor]]:
        """Blended probabilities by strip: (first row, rows, ``K x rows x W``)."""
        height, width = raster.scene.shape
        size, classes = self.chip_size, len(self.class_names)
        rows = window_starts(height, size, self.stride)
        columns = window_starts(width, size, self.stride)
        total = torch.zeros(classes, size, width, device=self.device)
        weight = torch.zeros(size, width, device=self.device)
        valid = torch.zeros(size, width, dtype=torch.bool, device=self.device)
        bar = tqdm(
            total=len(rows) * len(columns),
            desc=f'Mapping {raster.scene.name}',
            unit='window',
            disable=not self.progress,
        )
        for position, top in enumerate(rows):
            strip, invalid = self._read_strip(raster, top)
            for start in range(0, len(columns), self.batch_size):
                batch = columns[start : start + self.batch_size]
                probs = self._classify(strip, invalid, batch)
                for column, window in zip(batch, probs, strict=True):
                    known = ~window[0].isnan()
                    span = slice(column, column + size)
                    total[:, :, span] += torch.nan_to_num(window) * self.weights
                    weight[:, span] += self.weights * known
                    valid[:, span] |= known
                bar.update(len(batch))
            # Rows above the next window row are final.
            done = (rows[position + 1] - top) if position + 1 < len(rows) else size
            probabilities = total[:, :done] / weight[:done].clamp(min=1e-12)
            probabilities[:, ~valid[:done]] = float('nan')
            yield top, done, probabilities
            total = torch.roll(total, -done, dims=1)
            weight = torch.roll(weight, -done, dims=0)
            valid = torch.roll(valid, -done, dims=0)
            total[:, size - done :] = 0
            weight[size - done :] = 0
            valid[size - done :] = False
        bar.close()

    def _profile(self, scene: Scene, count: int, dtype: str, nodata: float) -> dict:
        height, width = scene.shape
        minx, _, _, maxy = scene.bounds
        return {
            'driver': 'GTiff',
            'width': width,
            'height': height,
            'count': count,
            'dtype': dtype,
            'nodata': nodata,
            'crs': scene.crs,
            'transform': from_origin(minx, maxy, *scene.res),
            'tiled': True,
            'blockxsize': 256,
            'blockysize': 256,
            'compress': 'deflate',
        }

    def map_scene(
        self,
        scene: Scene,
        output: str | Path,
        probabilities: ProbabilityFormat | None = None,
        overwrite: bool = False,
    ) -> MapResult:
        """Classify one scene into a class-map COG (and optionally probabilities).

        Args:
            scene: the scene (see :func:`geossl.data.scene.find_scenes`).
            output: the class map ``.tif``; probabilities go beside it as
                ``<stem>_probabilities.tif``.
            probabilities: also write per-class probabilities: ``uint8`` (0-254 for
                0-1, 255 for nodata) or ``float16`` values (stored as float32 where
                GDAL lacks float16).
            overwrite: replace existing outputs.

        Returns:
            What was written.

        Raises:
            GeosslInputError: for a scene the model cannot map or an output that
                cannot be written; nothing is left behind.
        """
        output = Path(output)
        probability_path = (
            output.with_name(f'{output.stem}_probabilities{output.suffix}')
            if probabilities
            else None
        )
        for path in filter(None, (output, probability_path)):
            check_output(path, overwrite)
        raster = self.raster(scene)
        started = time.perf_counter()
        finals = [output] if probability_path is None else [output, probability_path]
        # Tiled GeoTIFFs first; each becomes a COG that appears whole at its path.
        scratch = {final: partial_path(final, '.gtiff.tif') for final in finals}
        try:
            self._write(scene, raster, scratch, output, probability_path, probabilities)
            for final, tiff in scratch.items():
                with atomic_output(final) as cog:
                    rasterio.shutil.copy(
                        tiff,
                        cog,
                        driver='COG',
                        compress='deflate',
                        overview_resampling='nearest' if final == output else 'average',
                    )
        finally:
            for tiff in scratch.values():
                tiff.unlink(missing_ok=True)
        height, width = scene.shape
        return MapResult(
            output, probability_path, height * width, time.perf_counter() - started
        )

    def _write(
        self,
        scene: Scene,
        raster: SceneRaster,
        scratch: dict[Path, Path],
        output: Path,
        probability_path: Path | None,
        probabilities: ProbabilityFormat | None,
    ) -> None:
        classes = len(self.class_names)
        profile = self._profile(scene, 1, 'uint8', NODATA_CLASS)
        with rasterio.open(scratch[output], 'w', **profile) as class_map:
            class_map.write_colormap(
                1,
                {
                    i: tuple(round(255 * c) for c in to_rgb(colour))
                    for i, colour in enumerate(self.colours)
                },
            )
            class_map.set_band_description(1, 'class')
            class_map.update_tags(CLASS_NAMES=json.dumps(self.class_names))
            class_map.update_tags(
                1, **{f'CLASS_{i}': name for i, name in enumerate(self.class_names)}
            )
            probability_file = None
            if probability_path is not None:
                dtype = 'uint8' if probabilities == 'uint8' else 'float16'
                nodata = 255 if probabilities == 'uint8' else float('nan')
                profile = self._profile(scene, classes, dtype, nodata)
                if dtype == 'float16':
                    # GDAL stores float16 GeoTIFFs as float32 unless it knows better.
                    profile['dtype'] = 'float32'
                probability_file = rasterio.open(
                    scratch[probability_path], 'w', **profile
                )
                for band, name in enumerate(self.class_names, start=1):
                    probability_file.set_band_description(band, name)
            try:
                for top, rows, probs in self._strips(raster):
                    window = Window(0, top, scene.shape[1], rows)
                    nodata = probs[0].isnan()
                    labels = probs.nan_to_num(-1).argmax(dim=0).to(torch.uint8)
                    labels[nodata] = NODATA_CLASS
                    class_map.write(labels.cpu().numpy(), 1, window=window)
                    if probability_file is not None:
                        values = probs.cpu().numpy()
                        if probabilities == 'uint8':
                            values = np.where(
                                np.isnan(values), 255, np.round(values * 254)
                            ).astype(np.uint8)
                        else:
                            values = values.astype(np.float16).astype(np.float32)
                        probability_file.write(values, window=window)
            finally:
                if probability_file is not None:
                    probability_file.close()
