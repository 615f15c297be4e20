"""The commands behind ``geossl``: their parsers and what each one runs.

``fit``, ``validate``, ``test`` and ``predict`` are Lightning's CLI over
:class:`~geossl.tasks.semi_supervised.SemiSupervisedTask` and
:class:`~geossl.data.datamodule.GeoDataModule` (YAML configs with ``--config``; the
model is sized from the data); ``pretrain`` is Lightning's ``fit`` over
:class:`~geossl.tasks.pretrain.PretrainingTask`. ``index``, ``map``, ``export``,
``evaluate-representation``, ``embed`` and ``qgis`` are geossl's own tools, with
options in the same underscore style. :func:`geossl.cli.main` turns their bad input
into one line and exit status 2.
"""

import re
import sys
import tempfile
from argparse import RawDescriptionHelpFormatter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from jsonargparse import ArgumentParser, DefaultHelpFormatter, Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from geossl.atomic import check_output
from geossl.cli import DESCRIPTION
from geossl.data.datamodule import GeoDataModule, GeoPretrainingDataModule
from geossl.data.index import index_source, write_index
from geossl.data.metadata import SENTINEL2_FILENAME_REGEX, MetadataReader
from geossl.data.scene import SceneDataset, find_scenes
from geossl.errors import GeosslInputError, reading
from geossl.inference.checkpoint import (
    SafeCheckpointIO,
    check_checkpoint_fits,
    load_task,
    read_checkpoint,
)
from geossl.inference.embeddings import (
    check_table_path,
    embedding_table,
    save_tsne_plot,
    tile_classes,
    tsne_coordinates,
    write_table,
)
from geossl.inference.export import export_onnx
from geossl.inference.mapping import SceneMapper
from geossl.inference.polygons import save_class_polygons
from geossl.inference.quicklook import save_quicklook
from geossl.inference.representation import (
    Encoder,
    check_bands,
    embed_samples,
    load_encoder,
    resolve_device,
    score_representation,
)
from geossl.qgis import PLUGIN_NAME, install_plugin, profile_plugins_dir
from geossl.ssl.policies import describe_algorithms
from geossl.tasks.pretrain import METHODS, PretrainingTask, SimCLR
from geossl.tasks.resume import ResumeCheckpoint
from geossl.tasks.semi_supervised import SemiSupervisedTask
from geossl.tasks.sizing import data_arguments


def _add_metadata_options(parser: ArgumentParser) -> None:
    parser.add_argument(
        '--filename_regex',
        type=str,
        default=SENTINEL2_FILENAME_REGEX.strip(),
        help='Regular expression with a (?P<date>...) group, matched against each '
        'file or sample-folder name to read its acquisition date (the TorchGeo '
        'convention). Default: the Sentinel-2 naming convention. Give an empty '
        'string to skip file names.',
    )
    parser.add_argument(
        '--date_format',
        type=str | None,
        default=None,
        help='strptime format of the date group, e.g. %Y%m%d. Default: ISO 8601 '
        '(20160112, 20160112T160652, 2016-01-12T16:06:52Z).',
    )
    parser.add_argument(
        '--sidecar',
        type=str | None,
        default=None,
        help='CSV with columns path,lon,lat,datetime that fills in locations and '
        'dates the data itself lacks (paths relative to the CSV).',
    )
    parser.add_argument(
        '--location_optional',
        type=bool,
        default=False,
        help='Mark the location of rasters with no CRS as missing instead of '
        'failing (needed for JPEG/PNG folders such as EuroSAT RGB).',
    )


def _metadata_reader(options: Namespace) -> MetadataReader:
    return MetadataReader(
        filename_regex=options.filename_regex or None,
        date_format=options.date_format,
        sidecar=options.sidecar,
        require_location=not options.location_optional,
    )


def _index_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description='Index a data source into a GeoPackage of footprints (EPSG:4326) '
        'with path, class, lon, lat and acquisition datetime per sample. Re-running '
        'on the same output reuses the rows of unchanged files.'
    )
    parser.add_argument(
        'source',
        type=str,
        help='A folder of class sub-folders, a folder of BigEarthNet patches, a '
        'folder of rasters (e.g. one scene, one file per band) or a raster file.',
    )
    parser.add_argument(
        '-o', '--output', type=str, required=True, help='The .gpkg file to write.'
    )
    parser.add_argument(
        '--labels',
        type=str | None,
        default=None,
        help='Vector file (GeoPackage, GeoJSON, Shapefile) of labelled points or '
        'polygons over the scene(s) in SOURCE. The index then lists chips: '
        'labelled chips around the labels and unlabelled chips on a grid across '
        'the rest of each scene.',
    )
    parser.add_argument(
        '--class_column',
        type=str,
        default='class',
        help='Column of the labels file holding the class.',
    )
    parser.add_argument(
        '--chip_size',
        type=int,
        default=64,
        help='Chip width and height in pixels of the finest band (with --labels).',
    )
    parser.add_argument(
        '--stride',
        type=int | None,
        default=None,
        help='Step of the unlabelled chip grid in pixels (with --labels); default: '
        'the chip size.',
    )
    _add_metadata_options(parser)
    return parser


def _run_index(options: Namespace) -> None:
    # An index is updated in place, so an existing one is no error.
    check_output(Path(options.output), overwrite=True)
    reader = _metadata_reader(options)
    if options.labels is None:
        index = index_source(options.source, options.output, reader)
    else:
        index = SceneDataset(
            options.source,
            options.labels,
            class_column=options.class_column,
            chip_size=options.chip_size,
            stride=options.stride,
            reader=reader,
        ).index
        write_index(index, options.output)
    located = int(index['lon'].notna().sum())
    dated = int(index['datetime'].notna().sum())
    labelled = int(index['label'].notna().sum())
    print(
        f'Indexed {len(index)} samples ({index.attrs["layout"]} layout; '
        f'{labelled} labelled, {located} with location, {dated} with date) '
        f'-> {Path(options.output)}'
    )


def _map_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description='Classify whole scenes with a trained model into a tiled, '
        'compressed Cloud-Optimized GeoTIFF class map (uint8, nodata 255, colour '
        "table and class names) on the scene's 10 m grid. Windows slide with the "
        'stride and overlapping predictions are blended.'
    )
    parser.add_argument('checkpoint', type=str, help='A .ckpt from geossl fit.')
    parser.add_argument(
        'sources',
        type=str,
        nargs='+',
        help='Scenes: multiband rasters, folders of per-band files (e.g. the 18SVG '
        'scene), or folders of several scenes.',
    )
    parser.add_argument(
        '-o',
        '--output',
        type=str,
        required=True,
        help='The class map .tif; a folder when SOURCES hold several scenes.',
    )
    parser.add_argument(
        '--chip_size',
        type=int | None,
        default=None,
        help="Window size (default: the model's).",
    )
    parser.add_argument(
        '--stride',
        type=int | None,
        default=None,
        help='Window step (default: half a window).',
    )
    parser.add_argument('--batch_size', type=int, default=64, help='Windows per batch.')
    parser.add_argument(
        '--device',
        type=str,
        default='auto',
        help="Lightning's accelerator: auto (a GPU if there is one), cpu, cuda, mps; "
        'or one GPU as cuda:N.',
    )
    parser.add_argument(
        '--devices',
        type=int,
        default=1,
        help='Processes, one per device, that share the windows of each scene '
        "(Lightning's DDP; on the CPU each process takes a share of the cores).",
    )
    parser.add_argument(
        '--workers',
        type=int,
        default=0,
        help='DataLoader processes reading the scene ahead of the model, per '
        'device; 0 reads in the main process.',
    )
    parser.add_argument(
        '--probabilities',
        type=Literal['uint8', 'float16'] | None,
        default=None,
        help='Also write <output stem>_probabilities.tif: uint8 (0-254 for 0-1) or '
        'float16.',
    )
    parser.add_argument(
        '--quicklook',
        type=bool,
        default=False,
        help='Also write <output stem>.png: the scene in true colour beside the '
        'class map, with a legend.',
    )
    parser.add_argument(
        '--polygons',
        type=bool,
        default=False,
        help='Also write <output stem>.gpkg: one polygon per connected region of a '
        'class (layer classes, columns class_id and class).',
    )
    parser.add_argument(
        '--overwrite', type=bool, default=False, help='Replace existing outputs.'
    )
    return parser


def _run_map(options: Namespace) -> None:
    task = load_task(options.checkpoint)
    scenes = find_scenes(options.sources)
    output = Path(options.output)
    if len(scenes) > 1 and output.suffix:
        raise GeosslInputError(
            output, f'must be a folder: the sources hold {len(scenes)} scenes'
        )
    mapper = SceneMapper(
        task,
        chip_size=options.chip_size,
        stride=options.stride,
        batch_size=options.batch_size,
        device=options.device,
        devices=options.devices,
        workers=options.workers,
    )
    targets = [
        output if len(scenes) == 1 else output / f'{scene.name}.tif' for scene in scenes
    ]
    # Refuse every extra output before any work, so nothing is left half done.
    extras = [('.png', options.quicklook), ('.gpkg', options.polygons)]
    for target in targets:
        for suffix, wanted in extras:
            if wanted:
                check_output(target.with_suffix(suffix), options.overwrite)
    for scene, target in zip(scenes, targets, strict=True):
        result = mapper.map_scene(
            scene, target, options.probabilities, options.overwrite
        )
        if result is None:  # Another process of a DDP run: the first one writes.
            continue
        if options.quicklook:
            save_quicklook(
                scene,
                target,
                mapper.class_names,
                mapper.colours,
                target.with_suffix('.png'),
            )
        if options.polygons:
            save_class_polygons(target, target.with_suffix('.gpkg'), mapper.class_names)
        rate = result.pixels / result.seconds / 1e6
        print(
            f'Mapped {scene.name} ({result.pixels / 1e6:.2f} Mpx, '
            f'{rate:.2f} Mpx/s) -> {result.class_map}'
        )


def _export_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description='Export the student of a checkpoint to ONNX: raw band values in, '
        'class probabilities out (normalisation folded in), with class names, '
        'colours, bands, chip size and scaling in the model metadata. The export is '
        'checked against PyTorch with onnxruntime before it is kept.'
    )
    parser.add_argument('checkpoint', type=str, help='A .ckpt from geossl fit.')
    parser.add_argument(
        '-o', '--output', type=str, required=True, help='The .onnx file to write.'
    )
    parser.add_argument(
        '--overwrite', type=bool, default=False, help='Replace an existing file.'
    )
    return parser


def _run_export(options: Namespace) -> None:
    difference = export_onnx(
        load_task(options.checkpoint), options.output, overwrite=options.overwrite
    )
    print(
        f'Exported {options.output} (onnxruntime vs PyTorch: max difference '
        f'{difference:.1e})'
    )


def _add_encoder_options(parser: ArgumentParser) -> None:
    """A checkpoint to embed with, the data options of fit, and how to run."""
    parser.add_argument(
        'checkpoint', type=str, help='A .ckpt from geossl pretrain or geossl fit.'
    )
    parser.add_class_arguments(
        GeoPretrainingDataModule,
        'data',
        skip={'batch_size', 'mu', 'balance_classes', 'num_workers'},
    )
    parser.add_argument(
        '--batch_size', type=int, default=256, help='Tiles per forward pass.'
    )
    parser.add_argument(
        '--workers', type=int, default=0, help='DataLoader processes reading tiles.'
    )
    parser.add_argument(
        '--device',
        type=str,
        default='auto',
        help='auto (a GPU if there is one), cpu, cuda, cuda:N or mps.',
    )


def _encoder_and_data(
    options: Namespace,
) -> tuple[Encoder, GeoPretrainingDataModule, str]:
    """The checkpoint's encoder, and the data split as the checkpoint's run split it.

    The split is the run's ``splits.csv`` (beside the ``checkpoints`` folder) when
    there is one, else ``--data.run_dir``'s, else made from the data options
    without being saved.

    Returns:
        The encoder, the set-up DataModule and where its split came from.
    """
    checkpoint = Path(options.checkpoint)
    encoder = load_encoder(checkpoint, resolve_device(options.device))
    data = options.data.as_dict()
    data['chip_size'] = data['chip_size'] or encoder.hparams['chip_size']
    run_split = checkpoint.parent.parent / 'splits.csv'
    with tempfile.TemporaryDirectory() as scratch:
        if data['run_dir'] is None:
            data['run_dir'] = str(run_split.parent if run_split.exists() else scratch)
        datamodule = GeoPretrainingDataModule(**data)
        check_bands(encoder, datamodule.dataset.band_names, options.data.root)
        # The encoder's statistics, not the data's: no pass over the data needed.
        datamodule.mean = encoder.views.mean.flatten().cpu()
        datamodule.std = encoder.views.std.flatten().cpu()
        datamodule.setup('fit')
    split = Path(data['run_dir']) / 'splits.csv'
    source = str(split) if data['run_dir'] != scratch else 'the --data options'
    return encoder, datamodule, source


def _evaluate_representation_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Measure a checkpoint's frozen features on labelled tiles: "
        'weighted kNN (cosine similarity, votes weighted by exp(similarity / '
        'temperature)) and a linear probe (logistic regression on standardised '
        'features), top-1 and top-5 accuracy. Both are fitted on training tiles and '
        "evaluated on the held-out split of the checkpoint's run. Single-label data "
        'only.'
    )
    _add_encoder_options(parser)
    parser.add_argument(
        '--fitted_on',
        type=Literal['labelled', 'train'],
        default='labelled',
        help="labelled: the run's labelled tiles (the few-label setting); train: "
        'every training tile with its label (the usual linear-evaluation protocol).',
    )
    parser.add_argument(
        '--split',
        type=Literal['test', 'val'],
        default='test',
        help='The held-out tiles to evaluate on.',
    )
    parser.add_argument('--k', type=int, default=200, help='kNN neighbours.')
    parser.add_argument(
        '--temperature', type=float, default=0.1, help='kNN vote temperature.'
    )
    return parser


def _run_evaluate_representation(options: Namespace) -> None:
    if options.k < 1 or options.temperature <= 0:
        raise GeosslInputError(
            '--k' if options.k < 1 else '--temperature', 'must be positive'
        )
    encoder, datamodule, source = _encoder_and_data(options)
    dataset = datamodule.dataset
    if dataset.multilabel:
        raise GeosslInputError(
            options.data.root,
            'is multi-label: kNN and linear-probe accuracy are for one class per tile',
        )
    positions = datamodule.positions
    fitted = positions['labelled']
    if options.fitted_on == 'train':
        fitted = np.union1d(fitted, positions['unlabelled'])
    fitted = fitted[dataset.is_labelled[fitted]]
    evaluated = positions[options.split]
    evaluated = evaluated[dataset.is_labelled[evaluated]]
    targets = torch.as_tensor(dataset.targets)
    if not len(evaluated):
        raise GeosslInputError(
            '--split',
            f'is {options.split} but that split holds no labelled tiles (see '
            f'--data.{options.split}_fraction)',
        )
    if len(targets[fitted].unique()) < 2:
        raise GeosslInputError(
            '--fitted_on',
            f'is {options.fitted_on} but those tiles hold fewer than two classes',
        )
    features = embed_samples(
        encoder,
        dataset,
        np.concatenate([fitted, evaluated]),
        options.batch_size,
        options.workers,
    )['features']
    scores = score_representation(
        features[: len(fitted)],
        targets[fitted],
        features[len(fitted) :],
        targets[evaluated],
        len(dataset.classes),
        options.k,
        options.temperature,
    )
    hparams = encoder.hparams
    print(
        f'{options.checkpoint}: {hparams.get("method") or hparams["algorithm"]} '
        f'{hparams.get("model") or hparams["backbone"]}, '
        f'{features.shape[1]} features\n'
        f'Fitted on {len(fitted)} {options.fitted_on} tiles, evaluated on '
        f'{len(evaluated)} {options.split} tiles (split: {source})\n'
    )
    print('| measure | top-1 % | top-5 % |\n|---|---|---|')
    for name, key in (
        (f'kNN (k={options.k}, T={options.temperature})', 'knn'),
        ('linear probe', 'linear'),
    ):
        top1, top5 = scores[f'{key}_top1'], scores[f'{key}_top5']
        print(f'| {name} | {100 * top1:.1f} | {100 * top5:.1f} |')


def _embed_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description="Write a checkpoint's features (and projection-head outputs, "
        'for geossl pretrain) of every tile, with its split, class, date and lon/lat '
        'point (EPSG:4326), to a GeoPackage or GeoParquet; optionally a 2-D t-SNE '
        'of the features coloured by class.'
    )
    _add_encoder_options(parser)
    parser.add_argument(
        '-o',
        '--output',
        type=str,
        required=True,
        help='The table: .gpkg (layer tiles) or .parquet.',
    )
    parser.add_argument(
        '--tsne', type=str | None, default=None, help='Also write this t-SNE .png.'
    )
    parser.add_argument(
        '--overwrite', type=bool, default=False, help='Replace existing outputs.'
    )
    return parser


def _run_embed(options: Namespace) -> None:
    output = Path(options.output)
    check_table_path(output, 0)
    check_output(output, options.overwrite)
    plot = Path(options.tsne) if options.tsne else None
    if plot is not None:
        if plot.suffix != '.png':
            raise GeosslInputError(plot, 'must end in .png')
        check_output(plot, options.overwrite)
    encoder, datamodule, _ = _encoder_and_data(options)
    dataset = datamodule.dataset
    if plot is not None and len(dataset) < 5:
        raise GeosslInputError(options.data.root, 'has fewer than 5 tiles for a t-SNE')
    embeddings = embed_samples(
        encoder, dataset, range(len(dataset)), options.batch_size, options.workers
    )
    check_table_path(output, sum(values.shape[1] for values in embeddings.values()))
    classes = tile_classes(dataset.targets, dataset.classes)
    splits = datamodule.splits['split']
    write_table(embedding_table(dataset.index, classes, splits, embeddings), output)
    sizes = ', '.join(f'{name} {v.shape[1]}' for name, v in embeddings.items())
    print(f'Embedded {len(dataset)} tiles ({sizes}) -> {output}')
    if plot is None:
        return
    coordinates = tsne_coordinates(embeddings['features'])
    # A multi-label tile takes the colour of its first class.
    colours = classes.str.split('; ').str[0]
    title = f't-SNE of {Path(options.checkpoint).name} features, {len(dataset)} tiles'
    save_tsne_plot(coordinates, colours, dataset.classes, title, plot)
    print(f't-SNE -> {plot}')


def _qgis_parser() -> ArgumentParser:
    parser = ArgumentParser(
        description='Install the geossl Processing provider into QGIS (3.22 or '
        'newer) as the plugin geossl_qgis. QGIS then runs geossl with this Python '
        'environment, in a subprocess; run again after upgrading geossl. Enable the '
        "plugin in QGIS's plugin manager, or headless with "
        "'qgis_process plugins enable geossl_qgis'."
    )
    parser.add_argument(
        'action', type=Literal['install'], help='install: copy the plugin into QGIS.'
    )
    parser.add_argument(
        '--profile',
        type=str,
        default='default',
        help='The QGIS user profile to install into.',
    )
    parser.add_argument(
        '--plugins_dir',
        type=str | None,
        default=None,
        help="A QGIS profile's python/plugins folder, instead of --profile's.",
    )
    return parser


def _run_qgis(options: Namespace) -> None:
    plugins_dir = (
        Path(options.plugins_dir)
        if options.plugins_dir
        else profile_plugins_dir(options.profile)
    )
    target = install_plugin(plugins_dir)
    print(
        f'Installed the geossl QGIS plugin into {target} (geossl runs with '
        f'{sys.executable}). Enable it in Plugins > Manage and Install Plugins, or '
        f'with: qgis_process plugins enable {PLUGIN_NAME}'
    )


def _tools_parser() -> ArgumentParser:
    parser = ArgumentParser(prog='geossl', description=DESCRIPTION, exit_on_error=False)
    subcommands = parser.add_subcommands(dest='command')
    subcommands.add_subcommand(
        'index', _index_parser(), help='Index a data source into a GeoPackage.'
    )
    subcommands.add_subcommand(
        'map', _map_parser(), help='Classify whole scenes into class-map COGs.'
    )
    subcommands.add_subcommand(
        'export', _export_parser(), help='Export the student to ONNX.'
    )
    subcommands.add_subcommand(
        'evaluate-representation',
        _evaluate_representation_parser(),
        help="kNN and linear-probe accuracy of a checkpoint's frozen features.",
    )
    subcommands.add_subcommand(
        'embed',
        _embed_parser(),
        help="Write every tile's features with its place; a t-SNE picture.",
    )
    subcommands.add_subcommand(
        'qgis', _qgis_parser(), help='Install the QGIS Processing provider.'
    )
    return parser


class HelpFormatter(RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with descriptions and epilogs kept as written."""


class GeosslCLI(LightningCLI):
    """Lightning's CLI with the model sized from the data.

    The number of classes, bands, the label kind, the dataset size, the chip size
    and the class and band names go from the DataModule to the model, so that a
    command line or config names the data once.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the data's shape to the model's; add ``--resume.every_n_train_steps``.

        Args:
            parser: the CLI's parser.
        """
        for target, compute in self.data_links().items():
            parser.link_arguments('data', target, compute, apply_on='instantiate')
        parser.add_lightning_class_args(ResumeCheckpoint, 'resume')
        parser.epilog = self.epilog()

    def epilog(self) -> str | None:
        """What ``--help`` ends with: every algorithm and its typed options.

        Returns:
            The text, read from the policy registry.
        """
        return (
            'Algorithms (--model.algorithm) and their options (--model.'
            "algorithm_options '{option: value}'):\n" + describe_algorithms()
        )

    #: Where the model takes the data's arguments, and which
    #: (:func:`~geossl.tasks.sizing.data_arguments`).
    model_key = 'model'
    data_keys: tuple[str, ...] = (
        'num_classes',
        'in_channels',
        'multilabel',
        'num_samples',
        'class_names',
        'band_names',
        'chip_size',
        'data_metadata',
    )

    def data_links(self) -> dict[str, Callable[[GeoDataModule], Any]]:
        """The model's arguments that the data sets.

        Returns:
            Model argument -> its value from the instantiated DataModule.
        """

        def argument(key: str) -> Callable[[GeoDataModule], Any]:
            return lambda dm: data_arguments(dm.dataset, dm.chip_size)[key]

        return {f'{self.model_key}.{key}': argument(key) for key in self.data_keys}

    def after_instantiate_classes(self) -> None:
        """Keep checkpoints in ``<default_root_dir>/checkpoints`` for every run.

        Lightning puts them under each logger version by default, where the next
        command's ``--ckpt_path last`` (resume, test, validate) would not find them;
        the folder must be known before Lightning looks for ``last``.
        """
        for callback in self.trainer.checkpoint_callbacks:
            if callback.dirpath is None:
                callback.dirpath = str(
                    Path(self.trainer.default_root_dir) / 'checkpoints'
                )

    def before_instantiate_classes(self) -> None:
        """Refuse a null where an option takes no null, before anything is built.

        jsonargparse checks each value of the command line, but lets a config
        file's null (``mu:`` with no value) through as "unset" for any option.

        Raises:
            GeosslInputError: naming the option.
        """
        try:
            self.parser.validate(self.config, skip_unset=False)
        except TypeError as error:
            message = ' '.join(str(error).split())
            key = re.search(r'Parser key "([^"]+)"', message)
            problem = message.split(':', 1)[-1].strip() if key else message
            raise GeosslInputError(
                f'--{key.group(1)}' if key else 'config', problem
            ) from None

    def _parse_ckpt_path(self) -> None:
        """Refuse an unsafe ``--ckpt_path`` before Lightning reads its settings.

        Lightning reads a checkpoint's hyperparameters into the config first of
        all; a pickled payload or a corrupt file then ends in one line, not in
        Lightning's traceback.
        """
        subcommand = self.config.get('subcommand')
        path = self.config[subcommand].get('ckpt_path') if subcommand else None
        if path and Path(path).is_file():
            read_checkpoint(path, 'cpu')
        super()._parse_ckpt_path()

    def _check_inputs(self) -> None:
        """Refuse bad data or an unfitting ``--ckpt_path`` before anything is written.

        The Trainer's loggers make the run folder before they set up the data; the
        data is set up here first (split and statistics), so that bad data ends the
        command with nothing written.
        """
        path = self.config_init[self.subcommand].get('ckpt_path')
        if path == 'last':
            lasts = [
                Path(callback.dirpath) / 'last.ckpt'
                for callback in self.trainer.checkpoint_callbacks
            ]
            path = max(
                (last for last in lasts if last.is_file()),
                key=lambda last: last.stat().st_mtime,
                default=None,
            )
        if path is not None and path not in ('best', 'hpc') and '://' not in str(path):
            check_checkpoint_fits(path, self.model)
        self.datamodule.trainer = self.trainer  # Where the split is saved.
        self.datamodule.setup(self.subcommand)

    before_fit = before_validate = before_test = before_predict = _check_inputs


class PretrainCLI(GeosslCLI):
    """``geossl pretrain``: a self-supervised method, chosen with ``--model``."""

    # The method is a ``--model`` subclass; it takes the data's bands and chip size.
    model_key = 'model.init_args'
    data_keys = ('in_channels', 'band_names', 'chip_size')

    def epilog(self) -> str | None:
        """No algorithms: ``--model`` chooses a method (its help lists them).

        Returns:
            None.
        """
        return None

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Fit's links and resume points; SimCLR unless ``--model`` says otherwise.

        Args:
            parser: the CLI's parser.
        """
        super().add_arguments_to_parser(parser)
        parser.set_defaults({'model': {'class_path': _class_path(SimCLR)}})

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        super()._add_subcommands(parser, **kwargs)
        # Lightning's fit, shown under geossl's name for it.
        self._subcommand_parsers['fit'].prog = 'geossl pretrain'

    def instantiate_classes(self) -> None:
        """Build the data, method and Trainer; a bad method setting is one line.

        Raises:
            GeosslInputError: the method's own refusal, which jsonargparse wraps
                when it builds a ``--model`` subclass.
        """
        try:
            super().instantiate_classes()
        except ValueError as error:
            cause = error.__cause__ or error.__context__
            if isinstance(cause, GeosslInputError):
                raise cause from None
            raise


def _class_path(cls: type) -> str:
    return f'{cls.__module__}.{cls.__qualname__}'


def _trainer_defaults() -> dict[str, Any]:
    return {
        'default_root_dir': 'runs/geossl',
        'log_every_n_steps': 10,
        # By class path, so that the run's saved config.yaml can be given back.
        'plugins': [{'class_path': _class_path(SafeCheckpointIO)}],
        'callbacks': [
            ModelCheckpoint(
                filename='best-{epoch}-{step}',
                # A resumed run carries on the same last.ckpt.
                enable_version_counter=False,
                monitor='val/loss',
                mode='min',
                save_last=True,
            )
        ],
    }


def _run_lightning(argv: Sequence[str] | None) -> None:
    GeosslCLI(
        SemiSupervisedTask,
        GeoDataModule,
        trainer_defaults=_trainer_defaults(),
        seed_everything_default=0,
        save_config_kwargs={'overwrite': True},
        # Parse errors come back to main(), which prints them as one line.
        parser_kwargs={'exit_on_error': False, 'formatter_class': HelpFormatter},
        # None reads sys.argv itself (Lightning warns when given both).
        args=None if argv is None else list(argv),
    )


def _pretrain_trainer_defaults() -> dict[str, Any]:
    return _trainer_defaults() | {
        'default_root_dir': 'runs/pretrain',
        'max_epochs': 100,
        # The methods have no validation: held-out tiles wait for evaluation.
        'limit_val_batches': 0,
        'callbacks': [ModelCheckpoint(save_last=True, enable_version_counter=False)],
    }


def _option_values(argv: Sequence[str], option: str) -> list[str | None]:
    """The values given to an option, as ``OPTION VALUE`` or ``OPTION=VALUE``.

    Args:
        argv: the command's arguments.
        option: e.g. ``--config``.

    Returns:
        Each value in order; None for the option given last with no value.
    """
    values = []
    for argument, following in zip(argv, [*argv[1:], None], strict=True):
        if argument.startswith(f'{option}='):
            values.append(argument.removeprefix(f'{option}='))
        elif argument == option:
            values.append(following)
    return values


def _check_pretraining_method(argv: Sequence[str]) -> None:
    """Refuse a ``--model`` that names no method, in one line, not jsonargparse's.

    Raises:
        GeosslInputError: for a bare name that is not a method's.
    """
    names = [task.__name__ for task in METHODS.values()]
    for value in _option_values(argv, '--model'):
        # Dotted class paths and config files are jsonargparse's to check.
        if value is not None and '.' not in value and value not in names:
            raise GeosslInputError(
                '--model', f'is {value!r}, not a method: choose from {", ".join(names)}'
            )


def _run_pretrain(argv: Sequence[str]) -> None:
    _check_pretraining_method(argv)
    PretrainCLI(
        PretrainingTask,
        GeoPretrainingDataModule,
        subclass_mode_model=True,
        trainer_defaults=_pretrain_trainer_defaults(),
        seed_everything_default=0,
        save_config_kwargs={'overwrite': True},
        parser_kwargs={'exit_on_error': False, 'formatter_class': HelpFormatter},
        # Lightning's fit, under geossl's name for it.
        args=['fit', *argv],
    )


def _check_configs(argv: Sequence[str]) -> None:
    """Read every ``--config`` file first, so that unreadable bytes are one line.

    jsonargparse reports a YAML syntax error itself, but lets other failures of
    reading the file (bytes that are not UTF-8, say) escape as tracebacks.

    Raises:
        GeosslInputError: naming the config file that cannot be read.
    """
    for value in _option_values(argv, '--config'):
        # A value that names no file is YAML text, jsonargparse's to check.
        if value is not None and Path(value).exists():
            with reading(value, 'a YAML config'):
                yaml.safe_load(Path(value).read_text(encoding='utf-8'))


def run(argv: Sequence[str], from_command_line: bool) -> None:
    """Run one command (not help): Lightning's, ``pretrain`` or one of the tools.

    Args:
        argv: the command and its arguments.
        from_command_line: whether ``argv`` is the process's own (Lightning then
            reads ``sys.argv`` itself, as DDP's other processes will).
    """
    if argv[0] not in TOOL_RUNNERS:
        _check_configs(argv[1:])
    if argv[0] == 'pretrain':
        _run_pretrain(argv[1:])
    elif argv[0] in TOOL_RUNNERS:
        options = _tools_parser().parse_args(argv)
        TOOL_RUNNERS[options.command](options[options.command])
    else:
        _run_lightning(None if from_command_line else argv)


#: What runs each of :data:`geossl.cli.TOOLS`.
TOOL_RUNNERS = {
    'index': _run_index,
    'map': _run_map,
    'export': _run_export,
    'evaluate-representation': _run_evaluate_representation,
    'embed': _run_embed,
    'qgis': _run_qgis,
}
