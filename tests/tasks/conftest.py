"""Helpers for the task tests."""

from geossl.data.datasets import GeoClassificationDataset
from geossl.tasks.semi_supervised import SemiSupervisedTask


def task_for(
    dataset: GeoClassificationDataset, algorithm: str = 'fixmatch', **options: object
) -> SemiSupervisedTask:
    """A task sized for a dataset, FixMatch unless told otherwise.

    The backbone is timm's tiny ``test_resnet`` unless told otherwise: what these
    tests check does not depend on the network's size.
    """
    return SemiSupervisedTask.for_dataset(
        dataset, algorithm, **({'model': 'test_resnet'} | options)
    )
