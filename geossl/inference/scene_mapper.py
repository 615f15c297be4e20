"""Slide a trained classifier over scenes into Cloud-Optimized GeoTIFF class maps.

Mapping runs in Lightning's predict loop, so devices and processes are Lightning's
(``accelerator='auto'``; several processes share the windows with DDP): each reads
and classifies its own band of rows (:mod:`geossl.inference.window_classifier`) and
writes them to a hidden part, and the first assembles the parts into COGs
(:mod:`geossl.inference.map_writer`; :mod:`geossl.inference.memory` keeps the heap
and GDAL's cache from growing). :class:`SceneMapper` maps one scene;
:func:`geossl.inference.mapping.map_scenes` is ``geossl map`` over it.
"""

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import get_args

from lightning.pytorch import Trainer
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from geossl.atomic import atomic_outputs, check_output
from geossl.data.bands import are_numbered
from geossl.data.masks import PixelMask
from geossl.data.scene_files import Scene
from geossl.data.scene_raster import SceneRaster
from geossl.errors import BandMismatchError, GeosslInputError
from geossl.inference.engines import chosen_engine
from geossl.inference.map_writer import MapWriter
from geossl.inference.memory import bounded_gdal_cache
from geossl.inference.options import Engine, ProbabilityFormat, TestTimeAugmentation
from geossl.inference.region import RegionOfInterest
from geossl.inference.tta import TTA_MOVES
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
        quicklook: the quick-look PNG, if asked for.
        polygons: the class polygons' GeoPackage, if asked for.
    """

    class_map: Path
    probabilities: Path | None
    pixels: int
    seconds: float
    quicklook: Path | None = None
    polygons: Path | None = None


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
        self.class_names: list[str] = list(task.class_names)
        self.colours: list[str] = list(task.hparams['class_colours'])
        self.band_names: list[str] = list(task.band_names)
        self.reflectance_offset = float(task.hparams['data']['reflectance_offset'])

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
        quicklook: bool = False,
        polygons: bool = False,
    ) -> MapResult | None:
        """Classify one scene into a class-map COG and the outputs asked for with it.

        The outputs appear together, when all are written, or not at all.

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
            quicklook: also write ``<stem>.png``, the scene beside its map.
            polygons: also write ``<stem>.gpkg``, one polygon per connected region
                of a class.

        Returns:
            What was written, in the first process; None in the others.

        Raises:
            GeosslInputError: for a scene the model cannot map, an output that
                cannot be written, or devices that are not there; nothing is left
                behind.
            OutputError: if the disk fills; nothing is left behind.
        """
        output = Path(output)
        maps = [output]
        if probabilities:
            maps.append(output.with_name(f'{output.stem}_probabilities.tif'))
        picture = output.with_suffix('.png') if quicklook else None
        shapes = output.with_suffix('.gpkg') if polygons else None
        outputs = [*maps, *(path for path in (picture, shapes) if path is not None)]
        for path in outputs:
            check_output(path, overwrite)
        mapped, polygons_ = scene, None
        if region is not None:
            mapped, polygons_ = region.on_scene(scene, self.chip_size, self.stride)
        canvas = mapped if crop else scene
        raster = self.raster(mapped)
        grid = WindowGrid(*mapped.shape, self.chip_size, self.stride)
        writer = MapWriter(
            mapped,
            canvas,
            grid,
            maps,
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
                    f'{trainer.world_size} processes but scene {mapped.name} has '
                    f'only {len(grid.rows)} rows of windows to share',
                )
            module = WindowClassifier(
                self.task,
                raster,
                grid,
                self.batch_size,
                self.workers,
                polygons_,
                self.tta,
                self.engine,
            )
            # The first process writes the outputs, as one set.
            first = trainer.is_global_zero
            with atomic_outputs(outputs) if first else nullcontext([]) as written:
                writer.targets = written[: len(maps)]
                try:
                    with bounded_gdal_cache():
                        trainer.predict(module, return_predictions=False)
                finally:
                    writer.close()
                    if first:
                        for path in writer.temporary_files():
                            path.unlink(missing_ok=True)
                if first:
                    partial = dict(zip(outputs, written, strict=True))
                    self._extras(
                        scene,
                        region,
                        partial[output],
                        partial.get(picture),
                        partial.get(shapes),
                    )
        if not first:
            return None
        return MapResult(
            output,
            maps[1] if probabilities else None,
            grid.height * grid.width,
            time.perf_counter() - started,
            picture,
            shapes,
        )

    def _extras(
        self,
        scene: Scene,
        region: RegionOfInterest | None,
        class_map: Path,
        picture: Path | None,
        shapes: Path | None,
    ) -> None:
        """The quick-look and polygons of a class map, if asked for.

        Args:
            scene: the scene mapped, uncropped.
            region: the region of interest, outlined on the quick-look.
            class_map: the class map, written but not yet in place.
            picture: where to write the quick-look, or None.
            shapes: where to write the polygons, or None.
        """
        from geossl.inference.polygons import save_class_polygons
        from geossl.inference.quicklook import save_quicklook

        if picture is not None:
            outline = None if region is None else region.in_crs(scene.crs)
            save_quicklook(
                scene,
                class_map,
                self.class_names,
                self.colours,
                picture,
                region=outline,
            )
        if shapes is not None:
            save_class_polygons(class_map, shapes, self.class_names)


def with_masks(
    scenes: list[Scene], mask: str | None, values: list[int] | None
) -> list[Scene]:
    """The scenes with the mask given, and the mask values given, if any.

    Args:
        scenes: the scenes.
        mask: a raster of classes on their grid, for every scene; None to keep
            each scene's own (its SCL file or band).
        values: the mask's invalid classes; None for the mask's defaults.

    Returns:
        The scenes.

    Raises:
        GeosslInputError: for mask values without a mask.
    """
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
