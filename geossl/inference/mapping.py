"""``geossl map``: classify whole scenes into Cloud-Optimized GeoTIFF class maps.

:func:`map_scenes` maps every scene of the sources, with a region of interest,
cloud masks, test-time augmentation, a quick-look and polygons if asked for, by
:class:`~geossl.inference.scene_mapper.SceneMapper`. It imports that machinery
(torch, Lightning, GDAL) when it runs, so that ``geossl map --help``, which needs
only its signature, starts without them.
"""

import warnings
from pathlib import Path

from geossl.errors import GeosslInputError
from geossl.inference.options import Engine, ProbabilityFormat, TestTimeAugmentation


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
    probabilities: ProbabilityFormat | None = None,
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
    from geossl.atomic import check_output
    from geossl.data.scene_files import find_scenes
    from geossl.inference.checkpoint import load_task
    from geossl.inference.region import RegionOfInterest
    from geossl.inference.scene_mapper import SceneMapper, with_masks

    task = load_task(checkpoint)
    scenes = find_scenes(sources)
    scenes = with_masks(scenes, mask, mask_values)
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
        result = mapper.map_scene(
            scene, path, probabilities, overwrite, region, crop, quicklook, polygons
        )
        if result is None:  # Another process of a DDP run: the first one writes.
            continue
        rate = result.pixels / result.seconds / 1e6
        print(
            f'Mapped {scene.name} ({result.pixels / 1e6:.2f} Mpx, '
            f'{rate:.2f} Mpx/s) -> {result.class_map}'
        )
