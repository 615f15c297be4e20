"""The task arguments that the data sets, and the checks that data fits a task.

A run names the data once: the model is sized from it (:func:`data_arguments`), and
data that does not fit a model (another checkpoint's, say) is refused in one line.
"""

from collections.abc import Mapping
from typing import Any, Literal

from geossl.data.datasets import GeoClassificationDataset
from geossl.errors import GeosslInputError
from geossl.models.metadata import MetadataEncoder

#: One class per sample (softmax) or multi-hot targets (sigmoid).
Task = Literal['multiclass', 'multilabel']


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
        ``num_classes``, ``in_channels``, ``task``, ``num_samples``,
        ``class_names``, ``band_names``, ``data_metadata``,
        ``reflectance_offset`` and, if given, ``chip_size``.
    """
    arguments = {
        'num_classes': len(dataset.classes),
        'in_channels': len(dataset.band_names),
        'task': 'multilabel' if dataset.multilabel else 'multiclass',
        'num_samples': len(dataset),
        'class_names': list(dataset.classes),
        'band_names': list(dataset.band_names),
        'data_metadata': dataset.metadata_parts,
        'reflectance_offset': dataset.reflectance_offset,
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
