"""FlexMatch: per-class thresholds from each class's learning status."""

from collections.abc import Mapping
from typing import Any, Self

import torch
from torch import Tensor

from geossl.errors import GeosslInputError
from geossl.ssl.distributed import gather_across_processes
from geossl.ssl.policies.base import (
    SHORT_BUDGET,
    PseudoLabels,
    WeakViewPolicy,
    check_threshold,
)


class FlexMatch(WeakViewPolicy, name='flexmatch', display_name='FlexMatch'):
    """Curriculum pseudo-labelling: per-class thresholds from learning status.

    Each unlabelled sample remembers the class it was last confidently (above the
    fixed threshold) predicted as; a class's learning status is its count of such
    samples over the largest count (including never-selected samples during
    warm-up), mapped convexly ``beta / (2 - beta)`` onto the threshold. Zhang et
    al., FlexMatch, NeurIPS 2021.
    """

    def __init__(
        self,
        num_classes: int,
        num_samples: int,
        threshold: float = 0.95,
        warmup: bool = True,
    ) -> None:
        """Initialise the policy.

        Args:
            num_classes: number of classes.
            num_samples: size of the dataset the sample positions index.
            threshold: the fixed threshold that the class thresholds scale.
            warmup: count never-selected samples in the normaliser, so thresholds
                rise from low values while few samples are selected.
        """
        super().__init__(num_classes)
        check_threshold('threshold', threshold)
        self.threshold = threshold
        self.warmup = warmup
        self.register_buffer('selected', torch.full((num_samples,), -1))
        self.register_buffer('learning_status', torch.zeros(num_classes))

    @classmethod
    def from_data(
        cls, num_classes: int, num_samples: int | None, **options: Any
    ) -> Self:
        """Build the policy for a dataset of ``num_samples`` samples.

        Args:
            num_classes: number of classes.
            num_samples: size of the dataset the sample positions index.
            **options: the policy's keyword arguments.

        Returns:
            The policy.

        Raises:
            GeosslInputError: without ``num_samples``.
        """
        if num_samples is None:
            raise GeosslInputError(
                'num_samples', 'flexmatch needs the size of the dataset it indexes'
            )
        return cls(num_classes, num_samples, **options)

    @classmethod
    def budget_options(cls, steps: int) -> dict[str, Any]:
        """A short run without the warm-up (the paper's non-warm-up variant).

        The warm-up divides each class's count by the count of tiles never
        confidently predicted, which stays the largest until most of the unlabelled
        set has been selected once; in a short run it never is, so every class
        threshold stayed near 0 in the first pretrained EuroSAT runs (mask ratio
        1.0, pseudo-label accuracy 0.39). Without it, counts are divided by the
        best-learned class's.

        Args:
            steps: the run's training steps.

        Returns:
            ``{'warmup': False}`` below :data:`~geossl.ssl.policies.base.SHORT_BUDGET`
            steps.
        """
        return {} if steps >= SHORT_BUDGET else {'warmup': False}

    @property
    def class_thresholds(self) -> Tensor:
        """Per-class thresholds after the convex mapping."""
        status = self.learning_status
        return self.threshold * status / (2.0 - status)

    def _update_learning_status(self) -> None:
        counts = torch.bincount(self.selected + 1, minlength=self.num_classes + 1)
        if counts[0] == len(self.selected):
            return
        per_class = counts[1:].float()
        normaliser = counts.max() if self.warmup else per_class.max()
        self.learning_status.copy_(per_class / normaliser)

    def forward(self, probs: Tensor, index: Tensor) -> PseudoLabels:  # noqa: D102
        if index.numel() and int(index.max()) >= len(self.selected):
            raise GeosslInputError(
                'num_samples',
                f'is {len(self.selected)} but a sample position is {int(index.max())}',
            )
        confidence, targets = probs.max(dim=1)
        if self.training:
            self._update_learning_status()
        weights = (confidence >= self.class_thresholds[targets]).float()
        if self.training:
            index, targets_all, confident = (
                gather_across_processes(index),
                gather_across_processes(targets),
                gather_across_processes(confidence >= self.threshold),
            )
            self.selected[index[confident]] = targets_all[confident]
        return PseudoLabels(targets, weights)

    def diagnostics(self) -> Mapping[str, Tensor]:  # noqa: D102
        return {'threshold': self.class_thresholds}
