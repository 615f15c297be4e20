"""Evaluation metrics (torchmetrics)."""

from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCohenKappa,
    MulticlassF1Score,
    MultilabelAveragePrecision,
    MultilabelF1Score,
)


def classification_metrics(num_classes: int, multilabel: bool) -> MetricCollection:
    """The metrics reported on validation and test data.

    Multi-class: overall accuracy, Cohen's kappa, macro F1, per-class F1 and, with
    more than five classes, top-5 accuracy. Multi-label: macro and micro mean
    average precision, and macro and micro F1 at probability 0.5.

    Args:
        num_classes: number of classes.
        multilabel: whether targets are multi-hot.

    Returns:
        The metrics; ``f1_per_class`` is a ``(K,)`` vector, the others scalars.
    """
    metrics: dict[str, Metric]
    if multilabel:
        metrics = {
            'map_macro': MultilabelAveragePrecision(num_classes, average='macro'),
            'map_micro': MultilabelAveragePrecision(num_classes, average='micro'),
            'f1_macro': MultilabelF1Score(num_classes, average='macro'),
            'f1_micro': MultilabelF1Score(num_classes, average='micro'),
            'f1_per_class': MultilabelF1Score(num_classes, average='none'),
        }
    else:
        metrics = {
            'accuracy': MulticlassAccuracy(num_classes, average='micro'),
            'kappa': MulticlassCohenKappa(num_classes),
            'f1_macro': MulticlassF1Score(num_classes, average='macro'),
            'f1_per_class': MulticlassF1Score(num_classes, average='none'),
        }
        if num_classes > 5:
            metrics['top5_accuracy'] = MulticlassAccuracy(
                num_classes, top_k=5, average='micro'
            )
    return MetricCollection(metrics)
