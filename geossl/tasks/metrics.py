"""Evaluation metrics (torchmetrics) and the confusion-matrix figure."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
from torch import Tensor
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


def save_confusion_matrix(
    matrix: Tensor, class_names: Sequence[str], path: str | Path, title: str
) -> Path:
    """Draw a confusion matrix (rows: true class, columns: predicted) as a PNG.

    Args:
        matrix: ``(K, K)`` counts.
        class_names: the K class names.
        path: the PNG to write.
        title: the figure title.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = matrix.cpu().numpy()
    size = max(4.0, 0.5 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(counts, cmap='Blues')
    axes.set_xticks(range(len(class_names)), class_names, rotation=90)
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel('predicted')
    axes.set_ylabel('true')
    axes.set_title(title)
    threshold = counts.max() / 2 if counts.size else 0
    for row, values in enumerate(counts):
        for column, count in enumerate(values):
            colour = 'white' if count > threshold else 'black'
            axes.text(column, row, str(count), ha='center', va='center', color=colour)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
