"""Evaluation metrics (torchmetrics), and the pseudo-labels' statistics in training."""

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCohenKappa,
    MulticlassF1Score,
    MultilabelAveragePrecision,
    MultilabelF1Score,
)

from geossl.ssl.policies import PseudoLabels


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


def per_class_values(
    name: str, value: Tensor, class_names: Sequence[str]
) -> dict[str, Tensor]:
    """A logged value under its name, or one per class if it has one per class.

    Args:
        name: e.g. ``val_f1``.
        value: a scalar, or one value per class.
        class_names: the classes, in model order.

    Returns:
        ``{name: value}``, or ``{name_<class>: value}`` for every class.
    """
    if value.ndim == 0:
        return {name: value}
    return {f'{name}_{cls}': v for cls, v in zip(class_names, value, strict=True)}


def pseudo_label_statistics(
    pseudo: PseudoLabels,
    labels: Tensor,
    class_names: Sequence[str],
    diagnostics: Mapping[str, Tensor],
) -> dict[str, Tensor]:
    """What the pseudo-labels of an unlabelled batch were, as training logs them.

    Args:
        pseudo: the policy's pseudo-labels: targets and weights.
        labels: the batch's true labels (-1 where unknown): class indices, or
            multi-hot rows for multi-label data.
        class_names: the classes, in model order.
        diagnostics: the policy's own values (thresholds, say), scalar or per class.

    Returns:
        ``train_mask_ratio`` (the share of pseudo-labels kept),
        ``train_pseudo_label_accuracy`` where kept ones have known labels,
        ``train_utilisation`` per class and ``train_<diagnostic>``.
    """
    kept = pseudo.weights > 0
    values = {'train_mask_ratio': kept.float().mean()}
    correct = pseudo.targets == labels
    if labels.ndim == 2:
        known = kept & (labels >= 0).all(dim=1, keepdim=True)
        usage = (pseudo.targets * kept).mean(dim=0)
    else:
        known = kept & (labels >= 0)
        usage = torch.bincount(pseudo.targets[kept], minlength=len(class_names)) / len(
            kept
        )
    if known.any():
        values['train_pseudo_label_accuracy'] = correct[known].float().mean()
    values |= per_class_values('train_utilisation', usage, class_names)
    for name, value in diagnostics.items():
        values |= per_class_values(f'train_{name}', value, class_names)
    return values
