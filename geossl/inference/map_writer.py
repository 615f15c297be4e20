"""The files of a map: blended rows written to GeoTIFF parts, assembled into COGs.

Each process blends the probabilities of its strips (:mod:`geossl.inference.windows`)
and writes its final rows to a hidden tiled GeoTIFF part (:class:`MapFiles`), holding
one strip in memory whatever the scene size. When all are done, the first process
pastes the parts together block by block and converts the result to a
Cloud-Optimized GeoTIFF (DEFLATE, internal overviews, colour table and class names)
that is renamed into place only when complete (:class:`MapWriter`). Pixels with no
data get the nodata class :data:`NODATA_CLASS`.
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from matplotlib.colors import to_rgb
from rasterio.transform import from_origin
from rasterio.windows import Window
from torch import Tensor

from geossl.atomic import partial_path
from geossl.data.scene_files import Scene
from geossl.inference.options import ProbabilityFormat
from geossl.inference.windows import StripBlender, WindowGrid
from geossl.progress import Tqdm

#: Class value of pixels with no data.
NODATA_CLASS = 255


def _profile(
    scene: Scene, rows: range, count: int, dtype: str, nodata: float
) -> dict[str, Any]:
    """A tiled, compressed GeoTIFF profile for ``rows`` of the scene's grid."""
    minx, _, _, maxy = scene.bounds
    xres, yres = scene.res
    return {
        'driver': 'GTiff',
        'width': scene.shape[1],
        'height': len(rows),
        'count': count,
        'dtype': dtype,
        'nodata': nodata,
        'crs': scene.crs,
        'transform': from_origin(minx, maxy - rows.start * yres, xres, yres),
        'tiled': True,
        'blockxsize': 256,
        'blockysize': 256,
        'compress': 'deflate',
    }


class MapFiles:
    """The class map and, if asked for, probability GeoTIFFs of a band of rows.

    Args:
        paths: the class map's path, then the probabilities' if asked for.
        scene: the scene mapped.
        rows: the scene rows the files hold.
        class_names: names of the classes, in model order.
        colours: their colours.
        probabilities: how to store probabilities, or None for none.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        scene: Scene,
        rows: range,
        class_names: Sequence[str],
        colours: Sequence[str],
        probabilities: ProbabilityFormat | None,
    ) -> None:
        self.rows = rows
        self.width = scene.shape[1]
        self.probabilities = probabilities
        self.datasets = [
            rasterio.open(
                paths[0], 'w', **_profile(scene, rows, 1, 'uint8', NODATA_CLASS)
            )
        ]
        class_map = self.datasets[0]
        class_map.write_colormap(
            1,
            {
                i: tuple(round(255 * c) for c in to_rgb(colour))
                for i, colour in enumerate(colours)
            },
        )
        class_map.set_band_description(1, 'class')
        class_map.update_tags(CLASS_NAMES=json.dumps(list(class_names)))
        class_map.update_tags(
            1, **{f'CLASS_{i}': name for i, name in enumerate(class_names)}
        )
        if probabilities is not None:
            # GDAL stores float16 GeoTIFFs as float32 unless it knows better.
            dtype, nodata = (
                ('uint8', 255) if probabilities == 'uint8' else ('float32', np.nan)
            )
            profile = _profile(scene, rows, len(class_names), dtype, nodata)
            self.datasets.append(rasterio.open(paths[1], 'w', **profile))
            for band, name in enumerate(class_names, start=1):
                self.datasets[1].set_band_description(band, name)

    def write(self, top: int, probabilities: Tensor) -> None:
        """Write blended rows, keeping those inside the files' rows.

        Args:
            top: scene row of the first row given.
            probabilities: ``K x rows x width`` probabilities, NaN for no data.
        """
        first = max(top, self.rows.start)
        stop = min(top + probabilities.shape[1], self.rows.stop)
        if first >= stop:
            return
        probabilities = probabilities[:, first - top : stop - top]
        window = Window(0, first - self.rows.start, self.width, stop - first)
        nodata = probabilities[0].isnan()
        labels = probabilities.nan_to_num(-1).argmax(dim=0).to(torch.uint8)
        labels[nodata] = NODATA_CLASS
        self.datasets[0].write(labels.cpu().numpy(), 1, window=window)
        if self.probabilities is not None:
            values = probabilities.cpu().numpy()
            if self.probabilities == 'uint8':
                values = np.where(np.isnan(values), 255, np.round(values * 254))
                values = values.astype(np.uint8)
            else:
                values = values.astype(np.float16).astype(np.float32)
            self.datasets[1].write(values, window=window)

    def paste(self, parts: Sequence[Path], top: int, left: int) -> None:
        """Copy files like these into them, a block of rows at a time.

        Args:
            parts: the class map, then the probabilities if asked for.
            top: row of these files that the parts' first row goes to.
            left: column of these files that the parts' first column goes to.
        """
        for part, dataset in zip(parts, self.datasets, strict=True):
            with rasterio.open(part) as source:
                for offset in range(0, source.height, _PASTE_ROWS):
                    count = min(_PASTE_ROWS, source.height - offset)
                    block = source.read(window=Window(0, offset, source.width, count))
                    window = Window(left, top + offset, source.width, count)
                    dataset.write(block, window=window)

    def close(self) -> None:
        """Close the files (again is harmless)."""
        for dataset in self.datasets:
            dataset.close()


#: Rows copied at a time when assembling parts.
_PASTE_ROWS = 256


class MapWriter(Callback):
    """Blend each process's strips into its rows; the first process assembles them.

    Each process writes its band of rows to hidden part files beside the outputs;
    when all are done, the first process pastes them together (a single part is
    used as it is) and converts the result to Cloud-Optimized GeoTIFFs at
    ``targets``, which the caller sets (hidden siblings of the outputs, renamed
    into place with the rest of the set: :func:`geossl.atomic.atomic_outputs`).

    Args:
        scene: the scene mapped (cropped to a region, if one is given).
        canvas: the grid of the outputs: the scene, or the scene uncropped.
        grid: the windows.
        outputs: the class map, then the probabilities if asked for; the parts
            are named after them.
        class_names: names of the classes, in model order.
        colours: their colours.
        probabilities: how to store probabilities, or None for none.
        progress: show a progress bar.

    Attributes:
        targets: where the first process writes the COGs, as ``outputs``.
    """

    def __init__(
        self,
        scene: Scene,
        canvas: Scene,
        grid: WindowGrid,
        outputs: Sequence[Path],
        class_names: Sequence[str],
        colours: Sequence[str],
        probabilities: ProbabilityFormat | None,
        progress: bool,
    ) -> None:
        self.scene = scene
        self.canvas = canvas
        self.grid = grid
        self.outputs = list(outputs)
        self.targets: list[Path] = []
        self.class_names = list(class_names)
        self.colours = list(colours)
        self.probabilities = probabilities
        self.progress = progress
        self.parts: list[tuple[list[Path], range]] = []
        self.scratch: list[Path] = []
        self.files: MapFiles | None = None
        self.bar: Tqdm | None = None

    def _files(self, paths: Sequence[Path], scene: Scene, rows: range) -> MapFiles:
        return MapFiles(
            paths,
            scene,
            rows,
            self.class_names,
            self.colours,
            self.probabilities,
        )

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Name every process's part files and open this process's.

        Args:
            trainer: the trainer.
            pl_module: the
                :class:`~geossl.inference.window_classifier.WindowClassifier`.
        """
        owner = trainer.strategy.broadcast(os.getpid())
        bands = [
            self.grid.band(r, trainer.world_size) for r in range(trainer.world_size)
        ]
        for rank, band in enumerate(bands):
            paths = [partial_path(o, f'.part{rank}.tif', owner) for o in self.outputs]
            self.parts.append((paths, range(band.first_row, band.stop_row)))
        self.scratch = [partial_path(o, '.gtiff.tif', owner) for o in self.outputs]
        paths, rows = self.parts[trainer.global_rank]
        self.files = self._files(paths, self.scene, rows)
        self.blender = StripBlender(self.grid, len(self.class_names), pl_module.device)
        self.bar = Tqdm(
            total=len(bands[trainer.global_rank].strips) * len(self.grid.columns),
            desc=f'Mapping {self.scene.name}',
            unit='window',
            disable=not (self.progress and trainer.is_global_zero),
        )

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: dict[str, Tensor],
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Blend a strip and write the rows it completed.

        Args:
            trainer: the trainer.
            pl_module: the
                :class:`~geossl.inference.window_classifier.WindowClassifier`.
            outputs: the strip's window probabilities and which were classified.
            batch: the strip.
            batch_idx: its position.
            dataloader_idx: always 0.
        """
        assert self.files is not None
        invalid = batch['invalid'] | batch['masked']
        top, rows = self.blender.add(
            batch['index'],
            outputs['probabilities'],
            invalid,
            outputs['classified'].to(invalid.device),
        )
        self.files.write(top, rows)
        self.bar.update(len(outputs['classified']))

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Wait for every process, then assemble the outputs in the first.

        Args:
            trainer: the trainer.
            pl_module: the
                :class:`~geossl.inference.window_classifier.WindowClassifier`.
        """
        self.close()
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            self._assemble()

    def _assemble(self) -> None:
        written = [(paths, rows) for paths, rows in self.parts if len(rows)]
        if len(written) == 1 and self.canvas == self.scene:
            sources = written[0][0]
        else:
            # Blocks of the canvas that no part covers are filled with nodata.
            merged = self._files(self.scratch, self.canvas, range(self.canvas.shape[0]))
            (minx, _, _, maxy), (xres, yres) = self.canvas.bounds, self.canvas.res
            top = round((maxy - self.scene.bounds[3]) / yres)
            left = round((self.scene.bounds[0] - minx) / xres)
            try:
                for paths, rows in written:
                    merged.paste(paths, top + rows.start, left)
            finally:
                merged.close()
            sources = self.scratch
        for number, (source, cog) in enumerate(zip(sources, self.targets, strict=True)):
            rasterio.shutil.copy(
                source,
                cog,
                driver='COG',
                compress='deflate',
                overview_resampling='average' if number else 'nearest',
            )

    def close(self) -> None:
        """Close this process's part files and progress bar.

        Closing the bar ends its line, also when mapping stops on an error.
        """
        if self.files is not None:
            self.files.close()
        if self.bar is not None:
            self.bar.close()

    def temporary_files(self) -> list[Path]:
        """Every part and scratch file of the run, whichever process wrote it.

        Returns:
            The paths.
        """
        return [path for paths, _ in self.parts for path in paths] + self.scratch
