"""The task arguments that the data sets, and the checks that data fits a task.

A run names the data once: the model is sized from it (:func:`data_arguments`), and
data that does not fit a model (another checkpoint's, say) is refused in one line.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from geossl.data.bands import numbered_bands
from geossl.data.colours import class_colours as default_class_colours
from geossl.data.datasets import GeoClassificationDataset
from geossl.errors import GeosslInputError
from geossl.models.metadata import MetadataParts

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


def described(
    data: Mapping[str, Any],
    class_colours: Sequence[str] | None,
    num_classes: int,
    in_channels: int,
) -> tuple[dict[str, Any], list[str]]:
    """The data's description and the classes' colours, every name filled in.

    The task keeps them so, so that every checkpoint can paint its map.

    Args:
        data: the task's ``data`` as a mapping of every setting.
        class_colours: the task's ``class_colours``; None picks them from the
            class names.
        num_classes: number of classes.
        in_channels: number of input bands.

    Returns:
        ``data`` with class and band names (by number where not given), and a
        colour per class.

    Raises:
        GeosslInputError: naming the option whose names or colours do not number
            the classes or bands.
    """
    data = dict(data)
    data['class_names'] = list(data['class_names'] or map(str, range(num_classes)))
    data['band_names'] = list(data['band_names'] or numbered_bands(in_channels))
    colours = list(class_colours or default_class_colours(data['class_names']))
    for option, names, size, *what in (
        ('data.class_names', data['class_names'], num_classes, 'names', 'classes'),
        ('data.band_names', data['band_names'], in_channels, 'bands', 'inputs'),
        ('class_colours', colours, num_classes, 'colours', 'classes'),
    ):
        if len(names) != size:
            raise GeosslInputError(
                option, f'lists {len(names)} {what[0]} for {size} {what[1]}'
            )
    return data, colours


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
