"""FixMatch: hard pseudo-labels above a fixed confidence."""

from collections.abc import Mapping

import torch
from torch import Tensor

from geossl.ssl.policies.base import PseudoLabels, WeakViewPolicy, check_threshold


class FixMatch(WeakViewPolicy, name='fixmatch', display_name='FixMatch'):
    """Hard labels where the weak view's confidence reaches a fixed threshold.

    Sohn et al., FixMatch, NeurIPS 2020.
    """

    def __init__(self, num_classes: int, threshold: float = 0.95) -> None:
        """Initialise the policy.

        Args:
            num_classes: number of classes.
            threshold: the confidence a pseudo-label needs.
        """
        super().__init__(num_classes)
        check_threshold('threshold', threshold)
        self.threshold = threshold

    def forward(self, probs: Tensor, index: Tensor) -> PseudoLabels:  # noqa: D102
        confidence, targets = probs.max(dim=1)
        return PseudoLabels(targets, (confidence >= self.threshold).float())

    def diagnostics(self) -> Mapping[str, Tensor]:  # noqa: D102
        return {'threshold': torch.tensor(self.threshold)}
