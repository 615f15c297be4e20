"""Helpers for the task tests."""

from geossl.data.datasets import GeoClassificationDataset
from geossl.tasks.semi_supervised import SemiSupervisedTask


def task_for(
    dataset: GeoClassificationDataset, algorithm: str = 'fixmatch', **options: object
) -> SemiSupervisedTask:
    """A task sized for a dataset (classes, bands, label kind, sample count)."""
    return SemiSupervisedTask(
        num_classes=len(dataset.classes),
        in_channels=len(dataset.band_names),
        multilabel=dataset.multilabel,
        algorithm=algorithm,
        num_samples=len(dataset),
        class_names=dataset.classes,
        **options,
    )
