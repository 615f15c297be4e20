"""The task arguments that the data sets, and the checks that data fits a task.

A run names the data once: the model is sized from it (:func:`data_arguments`), and
data that does not fit a model (another checkpoint's, say) is refused in one line.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from geossl.data.datasets import GeoClassificationDataset
from geossl.errors import GeosslInputError
from geossl.models.metadata import MetadataEncoder, MetadataParts

#: One class per sample (softmax) or multi-hot targets (sigmoid).
Task = Literal['multiclass', 'multilabel']


@dataclass
class DataDescription:
    """What the task keeps of its data: the task's ``data``.

    ``geossl fit`` and ``SemiSupervisedTask.for_dataset`` take it from the data
    (:func:`data_arguments`); checkpoints keep it, so that ``map`` and ``export``
    name the classes and read scenes as the training data was read.

    Attributes:
        class_names: names of the classes, for logs, figures and maps; None for
            their numbers.
        band_names: names of the input bands in order; None for their numbers.
        reflectance_offset: the offset of data that declares none (``geossl fit``
            sets it from ``--data.reflectance_offset``; see
            :mod:`geossl.data.reflectance`).
        metadata_parts: the metadata the data has, which the teacher sees with
            its ``metadata='auto'``.
        num_samples: size of the dataset the sample positions index (FlexMatch's
            and the teacher's neighbours' memories need it); None if not known.
    """

    class_names: list[str] | None = None
    band_names: list[str] | None = None
    reflectance_offset: float = 0.0
    metadata_parts: MetadataParts = 'location+time'
    num_samples: int | None = None


def data_arguments(
    dataset: GeoClassificationDataset, chip_size: int | None = None
) -> dict[str, Any]:
    """A task's arguments as the data gives them.

    ``geossl fit`` and ``pretrain`` link these from the DataModule into the model,
    and :meth:`~geossl.tasks.semi_supervised.SemiSupervisedTask.for_dataset` passes
    them, so the command line and the Python API size a model the same way.

    Args:
        dataset: the data: classes, bands, label kind, size, names and metadata.
        chip_size: the chips' height and width, where the data sets it.

    Returns:
        ``num_classes``, ``in_channels``, ``task``, ``data`` (a
        :class:`DataDescription`) and, if given, ``chip_size``.
    """
    arguments = {
        'num_classes': len(dataset.classes),
        'in_channels': len(dataset.band_names),
        'task': 'multilabel' if dataset.multilabel else 'multiclass',
        'data': DataDescription(
            list(dataset.classes),
            list(dataset.band_names),
            dataset.reflectance_offset,
            dataset.metadata_parts,
            len(dataset),
        ),
    }
    if chip_size is not None:
        arguments['chip_size'] = chip_size
    return arguments


def check_data_fits(
    hparams: Mapping[str, Any], dataset: GeoClassificationDataset
) -> None:
    """Refuse data whose bands or label kind are not the task's.

    Args:
        hparams: the task's hyperparameters (``in_channels``, ``task``).
        dataset: the data.

    Raises:
        GeosslInputError: naming the option the data contradicts.
    """
    bands = len(dataset.band_names)
    if bands != hparams['in_channels']:
        raise GeosslInputError(
            'in_channels',
            f'is {hparams["in_channels"]} but the data has {bands} bands '
            f'({", ".join(dataset.band_names)})',
        )
    if dataset.multilabel != (hparams['task'] == 'multilabel'):
        kind = 'multi-label' if dataset.multilabel else 'multi-class'
        raise GeosslInputError('task', f'is {hparams["task"]} but the data is {kind}')


def check_metadata_known(
    encoder: MetadataEncoder, dataset: GeoClassificationDataset
) -> None:
    """Refuse a teacher that would see only "missing" for a part of its metadata.

    Args:
        encoder: the teacher's metadata encoder.
        dataset: the data.

    Raises:
        GeosslInputError: if every sample lacks a part the encoder uses.
    """
    for used, column, what in (
        (encoder.uses_location, 'lon', 'location'),
        (encoder.uses_time, 'datetime', 'acquisition date'),
    ):
        if used and not dataset.index[column].notna().any():
            other = 'time' if what == 'location' else 'location'
            raise GeosslInputError(
                'teacher.metadata',
                f'is {encoder.parts!r} but the {what} of every sample is missing; '
                f'use metadata={other!r} (or give the data its {what})',
            )
