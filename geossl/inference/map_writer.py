"""Classify whole scenes into Cloud-Optimized GeoTIFF class maps.

Mapping runs in Lightning's predict loop, so devices and processes are Lightning's
(``accelerator='auto'``; several processes share the windows with DDP). Each process
reads the strips of its own band of rows (see :mod:`geossl.inference.windows`) in
DataLoader workers, classifies their windows in batches on its device, blends them
and writes its final rows to a hidden tiled GeoTIFF part, holding one strip in
memory whatever the scene size (:mod:`geossl.inference.memory` keeps the heap and
GDAL's cache from growing). When all are done, the first process pastes the parts
together block by block and converts the result to a Cloud-Optimized GeoTIFF
(DEFLATE, internal overviews, colour table and class names) that is renamed into
place only when complete. Pixels with no data get the nodata class 255.
"""

import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import rasterio.shutil
import shapely
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from matplotlib.colors import to_rgb
from rasterio.transform import from_origin
from rasterio.windows import Window
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from geossl.atomic import atomic_output, check_output, partial_path
from geossl.data.bands import are_numbered
from geossl.data.masks import PixelMask
from geossl.data.scene import Scene, SceneRaster, find_scenes
from geossl.errors import BandMismatchError, GeosslInputError
from geossl.inference.checkpoint import load_task
from geossl.inference.memory import bounded_gdal_cache
from geossl.inference.region import RegionOfInterest
from geossl.inference.tta import (
    TTA_MOVES,
    TestTimeAugmentation,
    augmented_probabilities,
)
from geossl.inference.windows import StripBlender, StripDataset, WindowGrid
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


class WindowClassifier(LightningModule):
    """A trained task over the windows of a scene, for Lightning's predict loop.

    Each process reads the strips of its own band of rows; only windows that hold a
    pixel with data (inside the region, if one is given) and whose centre pixel the
    scene's mask leaves valid are classified.

    Args:
        task: the trained task.
        raster: the scene's dataset, reading the model's bands.
        grid: the windows.
        batch_size: windows per forward pass (before test-time augmentation).
        workers: DataLoader processes reading strips.
        region: the region of interest in the scene's CRS, or None.
        tta: the test-time augmentation.
    """

    def __init__(
        self,
        task: SemiSupervisedTask,
        raster: SceneRaster,
        grid: WindowGrid,
        batch_size: int,
        workers: int,
        region: shapely.Geometry | None = None,
        tta: TestTimeAugmentation = 'none',
    ) -> None:
        super().__init__()
        self.task = task
        self.raster = raster
        self.grid = grid
        self.batch_size = batch_size
        self.workers = workers
        self.region = region
        self.tta = tta

    def predict_dataloader(self) -> DataLoader:
        """This process's strips, one per batch.

        Returns:
            The loader.
        """
        band = self.grid.band(self.global_rank, self.trainer.world_size)
        dataset = StripDataset(self.raster, self.grid, band, self.region)
        return DataLoader(dataset, batch_size=None, num_workers=self.workers)

    def predict_step(self, strip: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        """Class probabilities of a strip's windows.

        Args:
            strip: a :class:`~geossl.inference.windows.StripDataset` item.
            batch_idx: its position.

        Returns:
            ``probabilities``, ``N x K`` left to right (0 for windows not
            classified), and ``classified``, which of the ``N`` windows were.
        """
        image = self.task.views.normalise(strip['image'][None])[0]
        positions = self.grid.windows_to_classify(strip['invalid'], strip['masked'])
        classes = int(self.task.hparams['num_classes'])
        probabilities = image.new_zeros(len(self.grid.columns), classes)
        classified = torch.zeros(len(self.grid.columns), dtype=torch.bool)
        classified[positions.cpu()] = True
        if len(positions):
            batches = self.grid.strip_windows(image, positions, self.batch_size)
            probabilities[positions] = torch.cat(
                [augmented_probabilities(self.task, b, self.tta) for b in batches]
            )
        return {'probabilities': probabilities, 'classified': classified}


class MapWriter(Callback):
    """Blend each process's strips into its rows; the first process assembles them.

    Each process writes its band of rows to hidden part files beside the outputs;
    when all are done, the first process pastes them together (a single part is
    used as it is) and converts the result to Cloud-Optimized GeoTIFFs, each renamed
    into place when whole.

    Args:
        scene: the scene mapped (cropped to a region, if one is given).
        canvas: the grid of the outputs: the scene, or the scene uncropped.
        grid: the windows.
        outputs: the class map, then the probabilities if asked for.
        class_names: names of the classes, in model order.
        colours: their colours.
        probabilities: how to store probabilities, or None for none.
        progress: show a progress bar.
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
        self.class_names = list(class_names)
        self.colours = list(colours)
        self.probabilities = probabilities
        self.progress = progress
        self.parts: list[tuple[list[Path], range]] = []
        self.scratch: list[Path] = []
        self.files: MapFiles | None = None
        self.bar: tqdm | None = None

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
            pl_module: the :class:`WindowClassifier`.
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
        self.bar = tqdm(
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
            pl_module: the :class:`WindowClassifier`.
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
            pl_module: the :class:`WindowClassifier`.
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
        for source, final in zip(sources, self.outputs, strict=True):
            with atomic_output(final) as cog:
                rasterio.shutil.copy(
                    source,
                    cog,
                    driver='COG',
                    compress='deflate',
                    overview_resampling='nearest'
                    if final == self.outputs[0]
                    else 'average',
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


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Hide Lightning's start-up notices (devices found, tips) while mapping."""
    logger = logging.getLogger('lightning.pytorch.utilities.rank_zero')
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class SceneMapper:
    """Slide a trained classifier over scenes and write the maps.

    Args:
        task: the trained task (see :func:`geossl.inference.checkpoint.load_task`).
        chip_size: window size; None for the size the model was trained on.
        stride: step between windows; None for half the window.
        batch_size: windows per forward pass.
        device: Lightning's accelerator (``auto``, ``cpu``, ``cuda``, ``mps``) or
            one GPU as ``cuda:N``.
        devices: processes (one per device) sharing the windows; more than one
            runs Lightning's DDP strategy.
        workers: DataLoader processes reading strips, per device.
        tta: test-time augmentation: average over no moves, the 2 flips or the 8
            flips and turns of each window (see :mod:`geossl.inference.tta`).
        progress: show a progress bar.
    """

    def __init__(
        self,
        task: SemiSupervisedTask,
        chip_size: int | None = None,
        stride: int | None = None,
        batch_size: int = 64,
        device: str = 'auto',
        devices: int = 1,
        workers: int = 0,
        tta: TestTimeAugmentation = 'none',
        progress: bool = True,
    ) -> None:
        self.task = task
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
        for option, value in (('batch_size', batch_size), ('devices', devices)):
            if value <= 0:
                raise GeosslInputError(option, f'is {value}; it must be > 0')
        if workers < 0:
            raise GeosslInputError('workers', f'is {workers}; it must be >= 0')
        if tta not in TTA_MOVES:
            raise GeosslInputError(
                'tta', f'is {tta!r}; choose one of {", ".join(TTA_MOVES)}'
            )
        accelerator, _, index = device.partition(':')
        if index and not index.isdigit():
            raise GeosslInputError('device', f'{device!r} is not like cuda:0')
        if index and devices != 1:
            raise GeosslInputError(
                'devices', f'is {devices} but device {device} names one device'
            )
        self.accelerator = accelerator
        self.devices: int | list[int] = [int(index)] if index else devices
        self.batch_size = batch_size
        self.workers = workers
        self.tta = tta
        self.progress = progress
        self.class_names: list[str] = list(task.hparams['class_names'])
        self.colours: list[str] = list(task.hparams['class_colours'])
        self.band_names: list[str] = list(task.hparams['band_names'])
        self.reflectance_offset = float(task.hparams['reflectance_offset'])

    def raster(self, scene: Scene) -> SceneRaster:
        """The scene's TorchGeo dataset reading the model's bands, in its order.

        A multiband raster whose bands have no names (no band descriptions) is read
        as the model's bands in the model's order when it has as many, with a
        warning. A scene that declares no reflectance offset takes the model's
        (the training data's rule).

        Args:
            scene: the scene.

        Returns:
            The dataset.

        Raises:
            BandMismatchError: if the scene lacks a band of the model.
            ChipSizeError: if the scene is smaller than a window.
            GeosslInputError: if the scene's mask is on another grid.
        """
        count = len(scene.band_names)
        unnamed = are_numbered(scene.band_names)
        if unnamed and count == len(self.band_names):
            warnings.warn(
                f'{scene.files[0]}: its bands have no names; reading them as the '
                f"model's {', '.join(self.band_names)}, in that order",
                UserWarning,
                stacklevel=2,
            )
            scene = replace(scene, band_names=tuple(self.band_names))
        elif unnamed:
            raise BandMismatchError(
                scene.files[0],
                f'has {count} unnamed bands but the model needs '
                f'{len(self.band_names)}: {", ".join(self.band_names)}',
            )
        missing = [b for b in self.band_names if b not in scene.band_names]
        if missing:
            raise BandMismatchError(
                scene.files[0],
                f'scene {scene.name} has bands {", ".join(scene.band_names)} but the '
                f'model needs {", ".join(self.band_names)} '
                f'(missing {", ".join(missing)})',
            )
        scene.check_fits(self.chip_size)
        if scene.mask is not None:
            scene.mask.check_covers(scene.crs, scene.bounds, scene.name)
        return SceneRaster(scene, self.band_names, self.reflectance_offset)

    def _trainer(self, writer: MapWriter) -> Trainer:
        several = self.devices != 1 and not isinstance(self.devices, list)
        try:
            return Trainer(
                accelerator=self.accelerator,
                devices=self.devices,
                strategy='ddp' if several else 'auto',
                # Each process reads its own band of rows (WindowClassifier).
                use_distributed_sampler=False,
                logger=False,
                enable_checkpointing=False,
                enable_model_summary=False,
                enable_progress_bar=False,
                callbacks=[writer],
            )
        except MisconfigurationException as error:
            raise GeosslInputError('device', str(error).splitlines()[0]) from None

    def map_scene(
        self,
        scene: Scene,
        output: str | Path,
        probabilities: ProbabilityFormat | None = None,
        overwrite: bool = False,
        region: RegionOfInterest | None = None,
        crop: bool = False,
    ) -> MapResult | None:
        """Classify one scene into a class-map COG (and optionally probabilities).

        Args:
            scene: the scene (see :func:`geossl.data.scene.find_scenes`).
            output: the class map ``.tif``; probabilities go beside it as
                ``<stem>_probabilities.tif``.
            probabilities: also write per-class probabilities: ``uint8`` (0-254 for
                0-1, 255 for nodata) or ``float16`` values (stored as float32 where
                GDAL lacks float16).
            overwrite: replace existing outputs.
            region: map only the windows that touch this region; pixels whose
                centre lies outside it are nodata.
            crop: write the outputs on the region's bounds rather than on the
                scene's grid.

        Returns:
            What was written, in the first process; None in the others.

        Raises:
            GeosslInputError: for a scene the model cannot map, an output that
                cannot be written, or devices that are not there; nothing is left
                behind.
        """
        output = Path(output)
        outputs = [output]
        if probabilities:
            outputs.append(output.with_name(f'{output.stem}_probabilities.tif'))
        for path in outputs:
            check_output(path, overwrite)
        canvas, polygons = scene, None
        if region is not None:
            scene, polygons = region.on_scene(scene, self.chip_size, self.stride)
            canvas = scene if crop else canvas
        raster = self.raster(scene)
        grid = WindowGrid(*scene.shape, self.chip_size, self.stride)
        writer = MapWriter(
            scene,
            canvas,
            grid,
            outputs,
            self.class_names,
            self.colours,
            probabilities,
            self.progress,
        )
        started = time.perf_counter()
        with _quiet_lightning():
            trainer = self._trainer(writer)
            if trainer.world_size > len(grid.rows):
                raise GeosslInputError(
                    'devices',
                    f'{trainer.world_size} processes but scene {scene.name} has only '
                    f'{len(grid.rows)} rows of windows to share',
                )
            module = WindowClassifier(
                self.task,
                raster,
                grid,
                self.batch_size,
                self.workers,
                polygons,
                self.tta,
            )
            try:
                with bounded_gdal_cache():
                    trainer.predict(module, return_predictions=False)
            finally:
                writer.close()
                if trainer.is_global_zero:
                    for path in writer.temporary_files():
                        path.unlink(missing_ok=True)
        if not trainer.is_global_zero:
            return None
        return MapResult(
            output,
            outputs[1] if probabilities else None,
            grid.height * grid.width,
            time.perf_counter() - started,
        )


def _with_masks(
    scenes: list[Scene], mask: str | None, values: list[int] | None
) -> list[Scene]:
    """The scenes with the mask given, and the mask values given, if any."""
    if mask is not None:
        scenes = [replace(scene, mask=PixelMask(Path(mask))) for scene in scenes]
    if values is None:
        return scenes
    if all(scene.mask is None for scene in scenes):
        raise GeosslInputError(
            'mask_values',
            'no scene has a mask (an SCL file or band); give one with --mask',
        )
    return [
        replace(scene, mask=scene.mask.with_values(values)) if scene.mask else scene
        for scene in scenes
    ]


def map_scenes(
    checkpoint: str,
    sources: list[str],
    output: str,
    chip_size: int | None = None,
    stride: int | None = None,
    batch_size: int = 64,
    device: str = 'auto',
    devices: int = 1,
    workers: int = 0,
    roi: str | None = None,
    roi_layer: str | None = None,
    crop: bool = False,
    tta: TestTimeAugmentation = 'none',
    mask: str | None = None,
    mask_values: list[int] | None = None,
    probabilities: Literal['uint8', 'float16'] | None = None,
    quicklook: bool = False,
    polygons: bool = False,
    overwrite: bool = False,
) -> None:
    """Classify whole scenes with a trained model into class maps.

    A tiled, compressed Cloud-Optimized GeoTIFF class map (uint8, nodata 255, colour
    table and class names) on the scene's 10 m grid. Windows slide with the stride
    and overlapping predictions are blended.

    Args:
        checkpoint: A .ckpt from geossl fit.
        sources: Scenes: multiband rasters, folders of per-band files (e.g. the
            18SVG scene), folders of several scenes, or STAC items (an Item,
            ItemCollection or static catalog; a JSON file or URL) whose band assets
            are read where they lie, over HTTP for remote ones.
        output: The class map .tif; a folder when SOURCES hold several scenes.
        chip_size: Window size (default: the model's).
        stride: Window step (default: half a window).
        batch_size: Windows per batch.
        device: Lightning's accelerator: auto (a GPU if there is one), cpu, cuda,
            mps; or one GPU as cuda:N.
        devices: Processes, one per device, that share the windows of each scene
            (Lightning's DDP; on the CPU each process takes a share of the cores).
        workers: DataLoader processes reading the scene ahead of the model, per
            device; 0 reads in the main process.
        roi: A vector file of polygons (any CRS): classify only the windows that
            touch them; pixels outside are nodata.
        roi_layer: The ROI's layer, in a multi-layer file (default: the first).
        crop: Write the maps on the ROI's bounds instead of the scene's grid.
        tta: Test-time augmentation: average each window's probabilities over
            none, the 2 flips, or the 8 flips and turns (dihedral).
        mask: A raster of classes on the scene's grid (any resolution), such as a
            Sentinel-2 SCL band, marking invalid pixels; by default a scene's own
            <stem>_SCL file or SCL band. Its invalid pixels are nodata and windows
            whose centre is invalid are not classified.
        mask_values: The mask's classes that are invalid (default: SCL's no data,
            cloud shadow, clouds, cirrus and snow: 0 3 8 9 10 11).
        probabilities: Also write <output stem>_probabilities.tif: uint8 (0-254 for
            0-1) or float16.
        quicklook: Also write <output stem>.png: the scene in true colour beside the
            class map, with a legend.
        polygons: Also write <output stem>.gpkg: one polygon per connected region of
            a class (layer classes, columns class_id and class).
        overwrite: Replace existing outputs.

    Raises:
        GeosslInputError: for several scenes and an output that is not a folder.
    """
    # The quick-look and the polygons read the maps this module writes.
    from geossl.inference.polygons import save_class_polygons
    from geossl.inference.quicklook import save_quicklook

    task = load_task(checkpoint)
    scenes = find_scenes(sources)
    scenes = _with_masks(scenes, mask, mask_values)
    region = RegionOfInterest.read(roi, roi_layer) if roi else None
    if crop and region is None:
        raise GeosslInputError('crop', 'crops to the ROI; give one with --roi')
    if region is not None and len(scenes) > 1:
        missed = [scene.name for scene in scenes if not region.overlaps(scene)]
        if missed and len(missed) < len(scenes):
            warnings.warn(
                f'{roi}: misses scenes {", ".join(missed)}; they are not mapped',
                UserWarning,
                stacklevel=2,
            )
            scenes = [scene for scene in scenes if scene.name not in missed]
    target = Path(output)
    if len(scenes) > 1 and target.suffix:
        raise GeosslInputError(
            target, f'must be a folder: the sources hold {len(scenes)} scenes'
        )
    mapper = SceneMapper(
        task,
        chip_size=chip_size,
        stride=stride,
        batch_size=batch_size,
        device=device,
        devices=devices,
        workers=workers,
        tta=tta,
    )
    targets = [
        target if len(scenes) == 1 else target / f'{scene.name}.tif' for scene in scenes
    ]
    # Refuse every extra output before any work, so nothing is left half done.
    extras = [('.png', quicklook), ('.gpkg', polygons)]
    for path in targets:
        for suffix, wanted in extras:
            if wanted:
                check_output(path.with_suffix(suffix), overwrite)
    for scene, path in zip(scenes, targets, strict=True):
        result = mapper.map_scene(scene, path, probabilities, overwrite, region, crop)
        if result is None:  # Another process of a DDP run: the first one writes.
            continue
        if quicklook:
            picture = path.with_suffix('.png')
            outline = None if region is None else region.in_crs(scene.crs)
            save_quicklook(
                scene,
                path,
                mapper.class_names,
                mapper.colours,
                picture,
                region=outline,
            )
        if polygons:
            save_class_polygons(path, path.with_suffix('.gpkg'), mapper.class_names)
        rate = result.pixels / result.seconds / 1e6
        print(
            f'Mapped {scene.name} ({result.pixels / 1e6:.2f} Mpx, '
            f'{rate:.2f} Mpx/s) -> {result.class_map}'
        )
