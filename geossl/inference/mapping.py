"""Classify whole scenes into Cloud-Optimized GeoTIFF class maps.

Mapping runs in Lightning's predict loop, so devices and processes are Lightning's
(``accelerator='auto'``; several processes share the windows with DDP): each reads
and classifies its own band of rows (:mod:`geossl.inference.window_classifier`) and
writes them to a hidden part, and the first assembles the parts into COGs
(:mod:`geossl.inference.map_writer`; :mod:`geossl.inference.memory` keeps the heap
and GDAL's cache from growing). :class:`SceneMapper` maps one scene;
:func:`map_scenes` is ``geossl map``: every scene of the sources, with a region of
interest, cloud masks, test-time augmentation, a quick-look and polygons if asked
for.
"""

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

from lightning.pytorch import Trainer
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from geossl.atomic import check_output
from geossl.data.bands import are_numbered
from geossl.data.masks import PixelMask
from geossl.data.scene_files import Scene, find_scenes
from geossl.data.scene_raster import SceneRaster
from geossl.errors import BandMismatchError, GeosslInputError
from geossl.inference.checkpoint import load_task
from geossl.inference.engines import Engine, chosen_engine
from geossl.inference.map_writer import MapWriter, ProbabilityFormat
from geossl.inference.memory import bounded_gdal_cache
from geossl.inference.polygons import save_class_polygons
from geossl.inference.quicklook import save_quicklook
from geossl.inference.region import RegionOfInterest
from geossl.inference.tta import (
    TTA_MOVES,
    TestTimeAugmentation,
)
from geossl.inference.window_classifier import WindowClassifier
from geossl.inference.windows import WindowGrid
from geossl.tasks.semi_supervised import SemiSupervisedTask


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
        engine: what runs the model: ``pytorch``, ``onnxruntime``, or ``auto``
            (onnxruntime on the CPU; see :mod:`geossl.inference.engines`).
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
        engine: Engine = 'auto',
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
        if engine not in get_args(Engine):
            raise GeosslInputError(
                'engine', f'is {engine!r}; choose one of {", ".join(get_args(Engine))}'
            )
        self.engine = chosen_engine(engine, accelerator)
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
            advice = (
                '; the model was trained on rasters that name no bands: fit it with '
                '--data.band_names naming them to map named scenes'
                if are_numbered(self.band_names)
                else ''
            )
            raise BandMismatchError(
                scene.files[0],
                f'scene {scene.name} has bands {", ".join(scene.band_names)} but the '
                f'model needs {", ".join(self.band_names)} '
                f'(missing {", ".join(missing)}){advice}',
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
            scene: the scene (see :func:`geossl.data.scene_files.find_scenes`).
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
                self.engine,
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
    engine: Engine = 'auto',
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
        engine: What runs the model: pytorch, onnxruntime (the student exported
            to ONNX once per model, into geossl's cache), or auto: onnxruntime on
            the CPU, where it is faster (a ResNet-18 1.4 times, an
            EfficientNet-Lite0 3 times), PyTorch on a GPU.
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
        engine=engine,
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
