"""FreeMatch: self-adaptive thresholds and a fairness loss."""

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from geossl.ssl.averaging import check_momentum, update_ema_
from geossl.ssl.distributed import mean_across_processes
from geossl.ssl.policies.base import PseudoLabels, WeakViewPolicy, budget_momentum


class FreeMatch(WeakViewPolicy, name='freematch', display_name='FreeMatch'):
    """Self-adaptive global and class-wise thresholds, plus a fairness loss.

    The global threshold is an EMA of the mean confidence; each class's threshold
    scales it by the EMA of that class's mean probability over its maximum
    (MaxNorm). The self-adaptive fairness loss ``-H(SumNorm(p/h), SumNorm(p_s/h_s))``
    compares the EMA class probabilities and prediction histogram with those of
    the kept strong views. Wang et al., FreeMatch, ICLR 2023.
    """

    def __init__(
        self, num_classes: int, ema: float = 0.999, fairness_weight: float = 0.01
    ) -> None:
        """Initialise the policy.

        Args:
            num_classes: number of classes.
            ema: momentum of the moving averages.
            fairness_weight: weight of the fairness loss.
        """
        super().__init__(num_classes)
        check_momentum(ema)
        self.ema = ema
        self.fairness_weight = fairness_weight
        uniform = torch.full((num_classes,), 1.0 / num_classes)
        self.register_buffer('global_threshold', torch.tensor(1.0 / num_classes))
        self.register_buffer('class_probs', uniform.clone())
        self.register_buffer('label_histogram', uniform.clone())

    @classmethod
    def budget_options(cls, steps: int) -> dict[str, Any]:
        """A short run's averages: a horizon ``1 / (1 - ema)`` of a twentieth of it.

        With the default momentum of 0.999 the global threshold, which starts at
        1/K, covers only 63 % of its way to the batch's mean confidence in 1,000
        steps: in the first pretrained EuroSAT runs FreeMatch kept 99 % of the
        pseudo-labels at an accuracy of 0.35.

        Args:
            steps: the run's training steps.

        Returns:
            :func:`~geossl.ssl.policies.base.budget_momentum`'s ``ema``.
        """
        return budget_momentum(steps)

    @property
    def class_thresholds(self) -> Tensor:
        """Per-class thresholds, the global one times MaxNorm class probabilities."""
        return self.global_threshold * self.class_probs / self.class_probs.max()

    def forward(self, probs: Tensor, index: Tensor) -> PseudoLabels:  # noqa: D102
        confidence, targets = probs.max(dim=1)
        if self.training:
            histogram = torch.bincount(targets, minlength=self.num_classes)
            batch = torch.cat(
                [
                    confidence.mean()[None],
                    probs.mean(dim=0),
                    histogram.to(probs.dtype) / len(targets),
                ]
            )
            batch = mean_across_processes(batch)
            probs_mean, histogram = batch[1:].split(self.num_classes)
            update_ema_(self.global_threshold, batch[0], self.ema)
            update_ema_(self.class_probs, probs_mean, self.ema)
            update_ema_(self.label_histogram, histogram, self.ema)
        weights = (confidence >= self.class_thresholds[targets]).float()
        return PseudoLabels(targets, weights)

    def consistency_loss(self, logits: Tensor, pseudo: PseudoLabels) -> Tensor:  # noqa: D102
        loss = super().consistency_loss(logits, pseudo)
        kept = pseudo.weights > 0
        if self.fairness_weight and kept.any():
            loss = loss + self.fairness_weight * self.fairness_loss(logits[kept])
        return loss

    def fairness_loss(self, logits: Tensor) -> Tensor:
        """The self-adaptive fairness loss on the kept strong-view logits.

        Args:
            logits: ``(N, K)`` strong-view logits of the kept samples.

        Returns:
            ``-H(SumNorm(class_probs / label_histogram), SumNorm(p_s / h_s))``.
        """
        probs = logits.softmax(dim=1)
        histogram = torch.bincount(probs.argmax(dim=1), minlength=self.num_classes)
        histogram = histogram.to(probs.dtype) / len(probs)
        expected = _sum_normalise(self.class_probs / self.label_histogram)
        # Classes absent from the batch histogram get no weight (1/0 -> 0).
        scale = torch.where(histogram > 0, 1.0 / histogram, torch.zeros_like(histogram))
        observed = _sum_normalise(probs.mean(dim=0) * scale)
        return (expected * torch.log(observed + 1e-12)).sum()

    def diagnostics(self) -> Mapping[str, Tensor]:  # noqa: D102
        return {
            'global_threshold': self.global_threshold,
            'threshold': self.class_thresholds,
        }


def _sum_normalise(values: Tensor) -> Tensor:
    return values / values.sum()
