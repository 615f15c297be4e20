"""geossl's Processing algorithms, each a ``geossl`` command run in a subprocess.

One module for every algorithm: QGIS's provider lists them from here, and each is a
class of its parameters over the shared base that runs the command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from processing.core.ProcessingConfig import ProcessingConfig
from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterVectorLayer,
)

from .enums import DOUBLE, FOLDER, INTEGER, VECTOR_POINT, VECTOR_POLYGON
from .runner import (
    GeosslRunError,
    command,
    find_python,
    read_algorithms,
    run_geossl,
)

#: The provider setting naming the geossl environment's Python.
PYTHON_SETTING = 'GEOSSL_PYTHON'

PLUGIN_DIR = Path(__file__).resolve().parent

PROBABILITY_FORMATS = ['none', 'uint8', 'float16']
#: ``geossl map --tta`` choices, as the Classify raster algorithm shows them.
TEST_TIME_AUGMENTATIONS = [
    ('none', 'None'),
    ('flips', 'Flips (2 looks per window)'),
    ('dihedral', 'Flips and turns (8 looks per window)'),
]
#: The Train algorithm's default choice.
DEFAULT_ALGORITHM = 'fixmatch'

Parameters = dict[str, Any]


def offered_algorithms() -> list[tuple[str, str]]:
    """The Train algorithm's choices: every multi-class algorithm of ``geossl fit``.

    Returns:
        ``(name, display name)`` pairs, as ``geossl qgis install`` listed them.

    Raises:
        QgsProcessingException: if the plugin was not installed by geossl.
    """
    try:
        return read_algorithms(PLUGIN_DIR)
    except GeosslRunError as error:
        raise QgsProcessingException(str(error)) from None


class GeosslAlgorithm(QgsProcessingAlgorithm):
    """An algorithm that runs one ``geossl`` command and reports into QGIS.

    Subclasses set ``ID`` (the id within the provider), ``TITLE`` (the toolbox
    name) and ``HELP`` (the help beside the dialog).
    """

    ID = ''
    TITLE = ''
    HELP = ''

    def name(self) -> str:
        """The id within the provider.

        Returns:
            ``ID``.
        """
        return self.ID

    def displayName(self) -> str:
        """The toolbox name.

        Returns:
            ``TITLE``.
        """
        return self.TITLE

    def shortHelpString(self) -> str:
        """The help shown beside the dialog.

        Returns:
            ``HELP``.
        """
        return self.HELP

    def createInstance(self) -> GeosslAlgorithm:
        """A new instance, as Processing asks for one per run.

        Returns:
            The instance.
        """
        return type(self)()

    def run_geossl(self, arguments: list[str], feedback: QgsProcessingFeedback) -> None:
        """Run ``geossl ARGUMENTS`` in the geossl environment.

        Args:
            arguments: the command's arguments.
            feedback: QGIS's feedback: progress, log and cancellation.

        Raises:
            QgsProcessingException: with geossl's one-line message on failure.
        """
        try:
            python = find_python(
                ProcessingConfig.getSetting(PYTHON_SETTING), PLUGIN_DIR
            )
            feedback.pushCommandInfo(' '.join(command(python, arguments)))
            run_geossl(
                python,
                arguments,
                feedback.setProgress,
                feedback.pushConsoleInfo,
                feedback.isCanceled,
            )
        except GeosslRunError as error:
            raise QgsProcessingException(str(error)) from None

    def add_integers(self, *specs: tuple[str, str, int, int]) -> None:
        """Declare integer parameters.

        Args:
            specs: (name, label, default, minimum) of each.
        """
        for name, label, default, minimum in specs:
            self.addParameter(
                QgsProcessingParameterNumber(
                    name,
                    label,
                    INTEGER,
                    default,
                    minValue=minimum,
                )
            )

    def file_of(
        self, parameters: Parameters, name: str, context: QgsProcessingContext
    ) -> str:
        """The file behind a raster layer parameter.

        Args:
            parameters: the run's parameters.
            name: the raster layer parameter.
            context: the run's context.

        Returns:
            The layer's file.

        Raises:
            QgsProcessingException: if the layer is not a file geossl can read.
        """
        layer = self.parameterAsRasterLayer(parameters, name, context)
        source = layer.source() if layer is not None else ''
        if not os.path.isfile(source):
            shown = layer.name() if layer is not None else name
            raise QgsProcessingException(
                f'{shown}: is not a raster file ({source or "no source"}); geossl '
                'reads raster files such as GeoTIFFs'
            )
        return source


class ClassifyRaster(GeosslAlgorithm):
    """``geossl map``: a class map (and probabilities) of a raster."""

    ID = 'classify_raster'
    TITLE = 'Classify raster'
    HELP = (
        'Classifies a raster with a model trained by geossl into a class map '
        "(Cloud-Optimized GeoTIFF, uint8, nodata 255, with the classes' "
        "colours and names) on the raster's grid. A window of the chip size "
        'slides with the stride and overlapping predictions are blended. The '
        "raster's bands must carry the model's band names (e.g. B02) or be "
        "exactly the model's bands in its order. With a processed area, only the "
        'windows that touch its polygons are classified and the pixels outside '
        "them are nodata; the map keeps the raster's grid unless it is cropped to "
        "the area's bounds. With a cloud mask (a Sentinel-2 SCL band, or any "
        "raster of classes on the raster's grid), its invalid classes are nodata "
        'and windows centred on them are not classified. Test-time augmentation '
        "averages each window's probabilities over its flips (and turns), for 2 "
        '(or 8) times the work.'
    )

    def initAlgorithm(self, config: Parameters | None = None) -> None:
        """Declare the parameters.

        Args:
            config: unused.
        """
        self.addParameter(QgsProcessingParameterRasterLayer('INPUT', 'Raster'))
        self.addParameter(
            QgsProcessingParameterFile(
                'CHECKPOINT', 'Checkpoint (.ckpt from geossl fit)', extension='ckpt'
            )
        )
        self.add_integers(
            ('CHIP_SIZE', "Window size in pixels (0: the model's)", 0, 0),
            ('STRIDE', 'Window step in pixels (0: half a window)', 0, 0),
            ('BATCH_SIZE', 'Windows per batch', 64, 1),
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                'ROI',
                'Processed area (polygons)',
                [VECTOR_POLYGON],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                'CROP', "Crop the map to the processed area's bounds", False
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                'MASK', 'Cloud mask (e.g. the SCL band)', optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                'MASK_VALUES',
                'Invalid classes of the mask',
                defaultValue='0 3 8 9 10 11',
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                'TTA',
                'Test-time augmentation',
                [title for _, title in TEST_TIME_AUGMENTATIONS],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                'PROBABILITIES',
                'Also write class probabilities',
                PROBABILITY_FORMATS,
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination('OUTPUT', 'Class map')
        )
        self.addOutput(
            QgsProcessingOutputRasterLayer(
                'OUTPUT_PROBABILITIES', 'Class probabilities'
            )
        )

    def processAlgorithm(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> Parameters:
        """Run ``geossl map``.

        Args:
            parameters: the run's parameters.
            context: the run's context.
            feedback: progress, log and cancellation.

        Returns:
            The class map and, if asked for, the probabilities.
        """
        raster = self.file_of(parameters, 'INPUT', context)
        checkpoint = self.parameterAsFile(parameters, 'CHECKPOINT', context)
        output = self.parameterAsOutputLayer(parameters, 'OUTPUT', context)
        arguments = ['map', checkpoint, raster, '-o', output, '--overwrite', 'true']
        for name in ('CHIP_SIZE', 'STRIDE', 'BATCH_SIZE'):
            value = self.parameterAsInt(parameters, name, context)
            if value:
                arguments += [f'--{name.lower()}', str(value)]
        if parameters.get('ROI') not in (None, ''):
            roi = self.parameterAsCompatibleSourceLayerPath(
                parameters, 'ROI', context, ['gpkg', 'geojson', 'shp'], 'gpkg'
            )
            crop = self.parameterAsBool(parameters, 'CROP', context)
            arguments += ['--roi', roi, '--crop', str(crop).lower()]
        if parameters.get('MASK') not in (None, ''):
            values = self.parameterAsString(parameters, 'MASK_VALUES', context)
            arguments += ['--mask', self.file_of(parameters, 'MASK', context)]
            arguments += ['--mask_values', f'[{", ".join(values.split())}]']
        tta = self.parameterAsEnum(parameters, 'TTA', context)
        arguments += ['--tta', TEST_TIME_AUGMENTATIONS[tta][0]]
        probabilities = PROBABILITY_FORMATS[
            self.parameterAsEnum(parameters, 'PROBABILITIES', context)
        ]
        results: Parameters = {'OUTPUT': output, 'OUTPUT_PROBABILITIES': None}
        if probabilities != 'none':
            arguments += ['--probabilities', probabilities]
            stem, _ = os.path.splitext(output)
            results['OUTPUT_PROBABILITIES'] = f'{stem}_probabilities.tif'
        self.run_geossl(arguments, feedback)
        return results


class BuildIndex(GeosslAlgorithm):
    """``geossl index``: footprints, locations and dates of a folder of rasters."""

    ID = 'build_index'
    TITLE = 'Build index'
    HELP = (
        'Indexes a folder of rasters (class sub-folders, BigEarthNet patches, or '
        'scenes) into a GeoPackage of footprints (EPSG:4326) with the path, '
        'class, longitude, latitude and acquisition date of each sample, read '
        'from the data itself.'
    )

    def initAlgorithm(self, config: Parameters | None = None) -> None:
        """Declare the parameters.

        Args:
            config: unused.
        """
        self.addParameter(
            QgsProcessingParameterFile('INPUT', 'Folder', behavior=FOLDER)
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                'OUTPUT', 'Footprints', VECTOR_POLYGON
            )
        )

    def processAlgorithm(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> Parameters:
        """Run ``geossl index``.

        Args:
            parameters: the run's parameters.
            context: the run's context.
            feedback: progress, log and cancellation.

        Returns:
            The GeoPackage.
        """
        folder = self.parameterAsFile(parameters, 'INPUT', context)
        output = self.parameterAsOutputLayer(parameters, 'OUTPUT', context)
        self.run_geossl(['index', folder, '-o', output], feedback)
        return {'OUTPUT': output}


class Train(GeosslAlgorithm):
    """``geossl fit``: train a semi-supervised model; the checkpoint is the output."""

    ID = 'train'
    TITLE = 'Train'
    HELP = (
        'Trains a semi-supervised classifier on a folder of GeoTIFFs (one '
        'sub-folder per class, plus unlabelled tiles) or on a raster with a '
        "layer of labelled points or polygons, using each tile's location and "
        'date. With the spatiotemporal teacher, a teacher that also sees where '
        'and when each chip was taken teaches the image-only student. The run '
        'folder gets the checkpoints (last.ckpt is the output), metrics and a '
        'confusion matrix. Every label is used unless a number per class is '
        'given; 10 % are held out for validation and 10 % for testing, or the '
        'samples inside a test region (and a validation region) polygon layer, '
        'or the split of a split file (a table or layer with a sample column '
        'and a split column: labelled, unlabelled, val, test, train). Unlabelled '
        'samples of a held-out region leave training too, and so does every '
        'training sample within the buffer of a test sample. The run folder '
        'gets splits.gpkg, a point per sample with its split. A geossl YAML '
        'config, if given, is applied first.'
    )

    def initAlgorithm(self, config: Parameters | None = None) -> None:
        """Declare the parameters.

        Args:
            config: unused.
        """
        self.addParameter(
            QgsProcessingParameterFile(
                'INPUT_FOLDER',
                'GeoTIFF folder (or give a raster below)',
                behavior=FOLDER,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                'INPUT_RASTER', 'Raster (with a labels layer)', optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                'LABELS',
                'Labels (points or polygons)',
                [VECTOR_POINT, VECTOR_POLYGON],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                'CLASS_FIELD',
                'Class field of the labels',
                defaultValue='class',
                parentLayerParameterName='LABELS',
                optional=True,
            )
        )
        offered = offered_algorithms()
        names = [name for name, _ in offered]
        self.addParameter(
            QgsProcessingParameterEnum(
                'ALGORITHM',
                'Algorithm',
                [title for _, title in offered],
                defaultValue=names.index(DEFAULT_ALGORITHM),
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                'TEACHER_STUDENT', 'Spatiotemporal teacher-student', defaultValue=True
            )
        )
        self.add_integers(
            ('LABELS_PER_CLASS', 'Labels kept per class (0: every label)', 0, 0),
            ('CHIP_SIZE', 'Chip size in pixels', 32, 1),
            ('BATCH_SIZE', 'Labelled chips per batch', 12, 1),
            ('MAX_STEPS', 'Training steps', 200, 1),
        )
        for name, label in (
            ('TEST_REGION', 'Test region (held out)'),
            ('VAL_REGION', 'Validation region (held out)'),
        ):
            self.addParameter(
                QgsProcessingParameterVectorLayer(
                    name, label, [VECTOR_POLYGON], optional=True
                )
            )
        self.addParameter(
            QgsProcessingParameterFile('SPLIT_FILE', 'Split file', optional=True)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                'BUFFER_KM',
                'Buffer around test samples (km)',
                DOUBLE,
                0.0,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                'CONFIG', 'geossl config (YAML)', extension='yaml', optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFolderDestination('OUTPUT', 'Run folder')
        )
        self.addOutput(QgsProcessingOutputFile('CHECKPOINT', 'Checkpoint'))

    def processAlgorithm(
        self,
        parameters: Parameters,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> Parameters:
        """Run ``geossl fit``.

        Args:
            parameters: the run's parameters.
            context: the run's context.
            feedback: progress, log and cancellation.

        Returns:
            The run folder and its last checkpoint.

        Raises:
            QgsProcessingException: unless exactly one of the folder and the raster
                is given.
        """
        folder = self.parameterAsFile(parameters, 'INPUT_FOLDER', context)
        has_raster = parameters.get('INPUT_RASTER') not in (None, '')
        if bool(folder) == has_raster:
            raise QgsProcessingException(
                'INPUT_FOLDER, INPUT_RASTER: give exactly one of the GeoTIFF folder '
                'and the raster'
            )
        root = folder or self.file_of(parameters, 'INPUT_RASTER', context)
        run_dir = self.parameterAsString(parameters, 'OUTPUT', context)
        arguments = ['fit']
        config = self.parameterAsFile(parameters, 'CONFIG', context)
        if config:
            arguments += ['--config', config]
        arguments += ['--data.root', root]
        if parameters.get('LABELS') not in (None, ''):
            labels = self.parameterAsCompatibleSourceLayerPath(
                parameters, 'LABELS', context, ['gpkg', 'geojson', 'shp'], 'gpkg'
            )
            field = self.parameterAsString(parameters, 'CLASS_FIELD', context)
            arguments += ['--data.labels', labels, '--data.class_column', field]
        arguments += self.split_arguments(parameters, context)
        kept = self.parameterAsInt(parameters, 'LABELS_PER_CLASS', context)
        if kept:
            arguments += ['--data.labels_per_class', str(kept)]
        else:
            arguments += ['--data.labels_per_class', 'null']
            arguments += ['--data.label_fraction', '1.0']
        chosen = self.parameterAsEnum(parameters, 'ALGORITHM', context)
        algorithm = offered_algorithms()[chosen][0]
        teacher = self.parameterAsBool(parameters, 'TEACHER_STUDENT', context)
        arguments += [
            '--model.algorithm',
            algorithm,
            '--model.teacher',
            'true' if teacher else 'null',
            '--data.chip_size',
            str(self.parameterAsInt(parameters, 'CHIP_SIZE', context)),
            '--data.batch_size',
            str(self.parameterAsInt(parameters, 'BATCH_SIZE', context)),
            '--trainer.max_steps',
            str(self.parameterAsInt(parameters, 'MAX_STEPS', context)),
            '--trainer.default_root_dir',
            run_dir,
        ]
        self.run_geossl(arguments, feedback)
        checkpoint = os.path.join(run_dir, 'checkpoints', 'last.ckpt')
        return {'OUTPUT': run_dir, 'CHECKPOINT': checkpoint}

    def split_arguments(
        self, parameters: Parameters, context: QgsProcessingContext
    ) -> list[str]:
        """``fit``'s split options: held-out regions, a split file, the buffer.

        Args:
            parameters: the run's parameters.
            context: the run's context.

        Returns:
            The options given.
        """
        arguments = []
        for name, option in (
            ('TEST_REGION', 'test_region'),
            ('VAL_REGION', 'val_region'),
        ):
            if parameters.get(name) not in (None, ''):
                region = self.parameterAsCompatibleSourceLayerPath(
                    parameters, name, context, ['gpkg', 'geojson', 'shp'], 'gpkg'
                )
                arguments += [f'--data.{option}', region]
        split_file = self.parameterAsFile(parameters, 'SPLIT_FILE', context)
        if split_file:
            arguments += ['--data.split_file', split_file]
        buffer = self.parameterAsDouble(parameters, 'BUFFER_KM', context)
        if buffer:
            arguments += ['--data.buffer_km', str(buffer)]
        return arguments
