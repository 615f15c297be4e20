"""Pseudo-labels for multi-label data: fixed and self-adaptive class thresholds."""

from collections.abc import Mapping

import torch
from torch import Tensor

from geossl.errors import GeosslInputError
from geossl.ssl.averaging import check_momentum, update_ema_
from geossl.ssl.distributed import mean_across_processes
from geossl.ssl.policies.base import PseudoLabels, WeakViewPolicy, check_threshold


class MultiLabelThreshold(
    WeakViewPolicy, name='multilabel', display_name='Multi-label threshold'
):
    """Multi-label pseudo-labels: keep a class where it is clearly on or clearly off.

    A sample-class pair is kept as positive where ``p >= positive`` and as negative
    where ``p <= negative`` (0.70 and 0.05 in Bernhard et al., ECAI 2024).
    """

    multilabel = True

    def __init__(
        self, num_classes: int, positive: float = 0.70, negative: float = 0.05
    ) -> None:
        """Initialise the policy.

        Args:
            num_classes: number of classes.
            positive: probability from which a class is a positive pseudo-label.
            negative: probability up to which a class is a negative pseudo-label.
        """
        super().__init__(num_classes)
        check_threshold('positive', positive)
        check_threshold('negative', negative)
        if negative >= positive:
            raise GeosslInputError(
                'negative', f'is {negative}; it must be below positive ({positive})'
            )
        self.positive = positive
        self.negative = negative

    def forward(self, probs: Tensor, index: Tensor) -> PseudoLabels:  # noqa: D102
        on = probs >= self.positive
        weights = (on | (probs <= self.negative)).float()
        return PseudoLabels(on.float(), weights)

    def diagnostics(self) -> Mapping[str, Tensor]:  # noqa: D102
        return {
            'positive': torch.tensor(self.positive),
            'negative': torch.tensor(self.negative),
        }


class MultiLabelFreeMatch(
    WeakViewPolicy, name='multilabel_freematch', display_name='Multi-label FreeMatch'
):
    """FreeMatch's self-adaptive thresholds for multi-label data, class by class.

    Each class is a binary decision whose confidence is ``max(p, 1 - p)``; the global
    threshold is the EMA of the mean confidence over samples and classes, and each
    class's threshold scales it by the EMA of that class's mean confidence over the
    largest (MaxNorm). A pair is kept where its confidence reaches its class's
    threshold; its target is ``p >= 0.5``.
    """

    multilabel = True

    def __init__(self, num_classes: int, ema: float = 0.999) -> None:
        """Initialise the policy.

        Args:
            num_classes: number of classes.
            ema: momentum of the moving averages.
        """
        super().__init__(num_classes)
        check_momentum(ema)
        self.ema = ema
        # A binary decision at chance has confidence 0.5.
        self.register_buffer('global_threshold', torch.tensor(0.5))
        self.register_buffer('class_confidence', torch.full((num_classes,), 0.5))

    @property
    def class_thresholds(self) -> Tensor:
        """Per-class thresholds, the global one scaled by MaxNorm class confidences."""
        return (
            self.global_threshold * self.class_confidence / self.class_confidence.max()
        )

    def forward(self, probs: Tensor, index: Tensor) -> PseudoLabels:  # noqa: D102
        confidence = torch.maximum(probs, 1.0 - probs)
        if self.training:
            batch = mean_across_processes(
                torch.cat([confidence.mean()[None], confidence.mean(dim=0)])
            )
            update_ema_(self.global_threshold, batch[0], self.ema)
            update_ema_(self.class_confidence, batch[1:], self.ema)
        weights = (confidence >= self.class_thresholds).float()
        return PseudoLabels((probs >= 0.5).float(), weights)

    def diagnostics(self) -> Mapping[str, Tensor]:  # noqa: D102
        return {
            'global_threshold': self.global_threshold,
            'threshold': self.class_thresholds,
        }
