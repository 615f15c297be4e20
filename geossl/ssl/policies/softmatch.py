"""SoftMatch: soft weights from a truncated Gaussian of the confidence."""

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from geossl.ssl.alignment import align_distribution
from geossl.ssl.averaging import check_momentum, update_ema_
from geossl.ssl.distributed import mean_across_processes
from geossl.ssl.policies.base import PseudoLabels, WeakViewPolicy, budget_momentum


class SoftMatch(WeakViewPolicy, name='softmatch', display_name='SoftMatch'):
    """Soft weights from a truncated Gaussian of the confidence, with uniform alignment.

    Probabilities are first aligned towards a uniform class distribution (divided by
    the EMA class probabilities); a sample whose confidence is below the EMA mean
    confidence gets weight ``exp(-(c - mu)^2 / (2 var / n_sigma^2))``, others 1.
    Chen et al., SoftMatch, ICLR 2023.
    """

    def __init__(
        self,
        num_classes: int,
        ema: float = 0.999,
        n_sigma: float = 2.0,
        uniform_alignment: bool = True,
    ) -> None:
        """Initialise the policy.

        Args:
            num_classes: number of classes.
            ema: momentum of the moving averages.
            n_sigma: width of the Gaussian in standard deviations.
            uniform_alignment: align the probabilities towards uniform classes.
        """
        super().__init__(num_classes)
        check_momentum(ema)
        self.ema = ema
        self.n_sigma = n_sigma
        self.uniform_alignment = uniform_alignment
        self.register_buffer(
            'class_probs', torch.full((num_classes,), 1.0 / num_classes)
        )
        self.register_buffer('confidence_mean', torch.tensor(1.0 / num_classes))
        self.register_buffer('confidence_var', torch.tensor(1.0))

    @classmethod
    def budget_options(cls, steps: int) -> dict[str, Any]:
        """A short run's averages: a horizon ``1 / (1 - ema)`` of a twentieth of it.

        With the default momentum of 0.999 the confidence mean, which starts at
        1/K, covers only 63 % of its way to the batch's mean confidence in 1,000
        steps, so the Gaussian stays centred below almost every sample.

        Args:
            steps: the run's training steps.

        Returns:
            :func:`~geossl.ssl.policies.base.budget_momentum`'s ``ema``.
        """
        return budget_momentum(steps)

    def forward(self, probs: Tensor, index: Tensor) -> PseudoLabels:  # noqa: D102
        if self.uniform_alignment:
            if self.training:
                batch_probs = mean_across_processes(probs.mean(dim=0))
                update_ema_(self.class_probs, batch_probs, self.ema)
            probs = align_distribution(probs, self.class_probs)
        confidence, targets = probs.max(dim=1)
        if self.training:
            # One sample has no variance: it leaves the running variance as it is.
            variance = (
                confidence.var(unbiased=True)
                if len(confidence) > 1
                else self.confidence_var.clone()
            )
            batch = torch.stack([confidence.mean(), variance])
            batch = mean_across_processes(batch)
            update_ema_(self.confidence_mean, batch[0], self.ema)
            update_ema_(self.confidence_var, batch[1], self.ema)
        below = torch.clamp(confidence - self.confidence_mean, max=0.0)
        weights = torch.exp(-(below**2) / (2 * self.confidence_var / self.n_sigma**2))
        return PseudoLabels(targets, weights)

    def diagnostics(self) -> Mapping[str, Tensor]:  # noqa: D102
        return {
            'confidence_mean': self.confidence_mean,
            'confidence_var': self.confidence_var,
        }
