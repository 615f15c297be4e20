"""The task arguments that the data sets, so that a run names the data once."""

from typing import Any

from geossl.data.datasets import GeoClassificationDataset


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
