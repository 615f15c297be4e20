"""Helpers for the task tests."""

from geossl.data.datasets import GeoClassificationDataset
from geossl.tasks.semi_supervised import SemiSupervisedTask


def task_for(
    dataset: GeoClassificationDataset, algorithm: str = 'fixmatch', **options: object
) -> SemiSupervisedTask:
    """A task sized for a dataset, FixMatch unless told otherwise."""
    return SemiSupervisedTask.for_dataset(dataset, algorithm, **options)
