"""What every pseudo-label policy shares: its outputs, its inputs and the registry.

A policy is the whole difference between FixMatch, FreeMatch, FlexMatch, SoftMatch,
Dash, CoMatch and the multi-label variants; the training step around it is shared
(see :class:`geossl.tasks.semi_supervised.SemiSupervisedTask`). From the outputs of
the pseudo-labelling network on the step's views (most policies need only the weak
views' class probabilities and the samples' dataset positions), a policy returns
targets and per-sample weights (per sample and class for multi-label data), then the
unsupervised losses of any network against them. It keeps whatever it learns over
training in registered buffers, so a checkpoint resumes it exactly. Under DDP, the
batch statistics a policy learns from are averaged (or gathered) across processes
(:mod:`geossl.ssl.distributed`), so every process holds the same state.

A policy class registers itself under the name the ``algorithm`` option takes, with
the name tables show, by its class keywords::

    class FixMatch(WeakViewPolicy, name='fixmatch', display_name='FixMatch'): ...
"""

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import torch.nn.functional as F
from torch import Tensor, nn

from geossl.errors import GeosslInputError

#: Runs shorter than this many steps are a short budget, where the moving averages and
#: warm-ups that USB tuned for 204,800 steps and more are scaled to it
#: (:meth:`PseudoLabelPolicy.budget_options`).
SHORT_BUDGET = 20_000

#: A scaled schedule lasts a run's steps over this, so that about 15 stages of Dash's
#: threshold, or an average's horizon ``1 / (1 - momentum)``, fit in a run.
BUDGET_STAGES = 20

#: Every policy by the name the ``algorithm`` option takes, filled as the policy
#: modules are imported (importing :mod:`geossl.ssl.policies` imports them all).
POLICIES: dict[str, type['PseudoLabelPolicy']] = {}


@dataclass
class PseudoLabels:
    """Targets for the strong views of an unlabelled batch.

    Attributes:
        targets: int64 ``(B,)`` class indices, or float32 ``(B, K)`` 0/1 targets for
            multi-label data.
        weights: float32 weights in [0, 1] of the same leading shape: ``(B,)``, or
            ``(B, K)`` for multi-label data; 0 drops a sample (or sample-class pair).
    """

    targets: Tensor
    weights: Tensor


def budget_stage(steps: int) -> int:
    """The length of a scaled schedule's stage in a run of ``steps`` steps.

    Args:
        steps: the run's training steps.

    Returns:
        ``steps // BUDGET_STAGES``, at least 1.
    """
    return max(1, steps // BUDGET_STAGES)


def budget_momentum(steps: int) -> dict[str, float]:
    """A moving average's ``ema`` option for a run of ``steps`` steps.

    Args:
        steps: the run's training steps.

    Returns:
        ``{'ema': 1 - 1 / budget_stage(steps)}`` (a horizon of one stage) below
        :data:`SHORT_BUDGET` steps; empty (the default momentum) from it on.
    """
    if steps >= SHORT_BUDGET:
        return {}
    return {'ema': 1 - 1 / budget_stage(steps)}


def check_threshold(name: str, value: float) -> None:
    """Refuse a threshold outside (0, 1].

    Args:
        name: the option that gave it.
        value: the threshold.

    Raises:
        GeosslInputError: if the value is outside (0, 1].
    """
    if not 0.0 < value <= 1.0:
        raise GeosslInputError(name, f'is {value}; a threshold must be in (0, 1]')


@dataclass
class ViewRows:
    """Rows of a training step's network outputs, split by the view they come from.

    The step runs one forward pass over ``[labelled weak views, unlabelled weak
    views, unlabelled strong views 1..V]``; this is that output, cut apart.

    Attributes:
        labelled: ``(L, ...)`` rows of the labelled weak views.
        weak: ``(B, ...)`` rows of the unlabelled weak views.
        strong: ``(V, B, ...)`` rows of the V strong views of the same samples.
    """

    labelled: Tensor
    weak: Tensor
    strong: Tensor

    @classmethod
    def split(cls, rows: Tensor, num_labelled: int, strong_views: int) -> Self:
        """Cut ``[labelled, weak, strong 1..V]`` rows apart.

        Args:
            rows: ``(L + (1 + V) B, ...)`` outputs.
            num_labelled: L.
            strong_views: V.

        Returns:
            The rows by view.
        """
        unlabelled = rows[num_labelled:].unflatten(0, (1 + strong_views, -1))
        return cls(rows[:num_labelled], unlabelled[0], unlabelled[1:])


class PseudoLabelPolicy(nn.Module, abc.ABC):
    """What an algorithm adds to the shared training step.

    From one network's outputs on the step's views it makes the pseudo-labels
    (:meth:`pseudo_label`), and from any network's outputs and those pseudo-labels
    the unsupervised losses (:meth:`unsupervised_losses`). Policies update their
    state only in training mode, so evaluating a policy does not change it.

    Attributes:
        name: the ``algorithm`` option's value for the policy.
        display_name: its name in tables and menus.
        multilabel: True for policies of multi-label (sigmoid) models.
        strong_views: strong views made of each unlabelled sample per step.
        projection_dim: size of the L2-normalised embeddings the policy needs from
            a projection head on each network; None for none.
        loss_weights: weights of the losses other than ``unsupervised_loss`` that
            :meth:`unsupervised_losses` returns (1 where not listed).
    """

    name: ClassVar[str]
    display_name: ClassVar[str]
    multilabel: ClassVar[bool] = False
    strong_views: ClassVar[int] = 1

    def __init_subclass__(
        cls, name: str | None = None, display_name: str | None = None, **kwargs: Any
    ) -> None:
        """Register a policy class under ``name`` (abstract bases give none).

        Args:
            name: the ``algorithm`` option's value for the policy.
            display_name: its name in tables and menus (``name`` if not given).
            **kwargs: for other classes' ``__init_subclass__``.

        Raises:
            TypeError: if another policy has the name already.
        """
        super().__init_subclass__(**kwargs)
        if name is None:
            return
        if name in POLICIES:
            raise TypeError(f'{name!r} names {POLICIES[name].__qualname__} already')
        cls.name = name
        cls.display_name = display_name or name
        POLICIES[name] = cls

    @classmethod
    def from_data(
        cls, num_classes: int, num_samples: int | None, **options: Any
    ) -> Self:
        """Build the policy for a dataset.

        Args:
            num_classes: number of classes.
            num_samples: size of the dataset that sample positions index (for
                policies that remember samples).
            **options: the policy's keyword arguments.

        Returns:
            The policy.
        """
        return cls(num_classes, **options)

    @classmethod
    def budget_options(cls, steps: int) -> dict[str, Any]:
        """Options that fit the policy's schedules to a run of ``steps`` steps.

        Published defaults are tuned for hundreds of thousands of steps; a policy
        whose moving averages or warm-ups would not play out in a shorter run
        scales them here (the benchmarks use this; none by default).

        Args:
            steps: the run's training steps.

        Returns:
            Keyword arguments of the policy; empty for its defaults.
        """
        return {}

    def __init__(self, num_classes: int) -> None:
        """Initialise the policy.

        Args:
            num_classes: number of classes of the model.
        """
        super().__init__()
        self.num_classes = num_classes
        self.projection_dim: int | None = None
        self.loss_weights: dict[str, float] = {}

    def probabilities(self, logits: Tensor) -> Tensor:
        """Class probabilities of logits: softmax, or sigmoid for multi-label data.

        Args:
            logits: ``(B, K)`` model outputs.

        Returns:
            ``(B, K)`` probabilities.
        """
        return logits.sigmoid() if self.multilabel else logits.softmax(dim=1)

    @abc.abstractmethod
    def pseudo_label(
        self,
        logits: ViewRows,
        embeddings: ViewRows | None,
        labels: Tensor,
        index: Tensor,
    ) -> PseudoLabels:
        """Pseudo-label the unlabelled batch (and, in training mode, learn from it).

        Args:
            logits: the pseudo-labelling network's ``(., K)`` logits by view (the
                teacher's under the teacher-student); detached here.
            embeddings: its projection-head embeddings by view, when
                ``projection_dim`` asks for them.
            labels: the labelled batch's labels.
            index: ``(B,)`` dataset positions of the unlabelled samples.

        Returns:
            Targets and weights of the unlabelled samples.
        """

    def unsupervised_losses(
        self, logits: ViewRows, embeddings: ViewRows | None, pseudo: PseudoLabels
    ) -> dict[str, Tensor]:
        """The losses that teach a network from the pseudo-labels.

        Args:
            logits: the trained network's logits by view.
            embeddings: its projection-head embeddings by view, if it has a head.
            pseudo: the step's pseudo-labels.

        Returns:
            ``{'unsupervised_loss': ...}``: the first strong view's
            :meth:`consistency_loss`, plus any loss named in ``loss_weights``.
        """
        return {'unsupervised_loss': self.consistency_loss(logits.strong[0], pseudo)}

    def consistency_loss(self, logits: Tensor, pseudo: PseudoLabels) -> Tensor:
        """Weighted loss of the strong-view logits against the pseudo-labels.

        The mean runs over the whole batch (and classes), so dropped samples count
        as zeros, as in FixMatch.

        Args:
            logits: ``(B, K)`` strong-view logits.
            pseudo: the pseudo-labels of the same samples.

        Returns:
            The scalar loss.
        """
        if self.multilabel:
            loss = F.binary_cross_entropy_with_logits(
                logits, pseudo.targets, reduction='none'
            )
        else:
            loss = F.cross_entropy(logits, pseudo.targets, reduction='none')
        return (loss * pseudo.weights).mean()

    def diagnostics(self) -> Mapping[str, Tensor]:
        """The policy's current thresholds or statistics, for logging.

        Returns:
            Name -> scalar or per-class ``(K,)`` tensor.
        """
        return {}


class WeakViewPolicy(PseudoLabelPolicy):
    """A policy that pseudo-labels from the weak views' probabilities.

    Subclasses implement :meth:`forward`, which sees the probabilities and the
    samples' dataset positions (Dash also reads the labelled logits first).
    """

    def pseudo_label(  # noqa: D102
        self,
        logits: ViewRows,
        embeddings: ViewRows | None,
        labels: Tensor,
        index: Tensor,
    ) -> PseudoLabels:
        return self(self.probabilities(logits.weak.detach()), index)

    @abc.abstractmethod
    def forward(self, probs: Tensor, index: Tensor) -> PseudoLabels:
        """Pseudo-label a batch (and, in training mode, learn from it).

        Args:
            probs: ``(B, K)`` weak-view probabilities, detached.
            index: ``(B,)`` dataset positions of the samples.

        Returns:
            Targets and weights.
        """
