"""Pseudo-label policies: what each semi-supervised algorithm adds to the step.

A policy is the whole difference between FixMatch, FreeMatch, FlexMatch, SoftMatch,
Dash, CoMatch and the multi-label variants; the training step around it is shared
(see :class:`geossl.tasks.semi_supervised.SemiSupervisedTask`). From the outputs of
the pseudo-labelling network on the step's views (most policies need only the weak
views' class probabilities and the samples' dataset positions), a policy returns
targets and per-sample weights (per sample and class for multi-label data), then the
unsupervised losses of any network against them. It keeps whatever it learns over
training in registered buffers, so a checkpoint resumes it exactly. Under DDP, the
batch statistics a policy learns from are averaged (or gathered) across processes,
so every process holds the same state.
"""

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Self

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from geossl.errors import GeosslInputError
from geossl.ssl.memory import RingBuffer


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


def _check_threshold(name: str, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise GeosslInputError(name, f'is {value}; a threshold must be in (0, 1]')


def _check_momentum(value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise GeosslInputError('ema', f'is {value}; it must be in [0, 1)')


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def mean_across_processes(value: Tensor) -> Tensor:
    """Average a statistic over the DDP processes (itself outside DDP).

    Args:
        value: the local statistic.

    Returns:
        The mean over all processes.
    """
    if not _distributed():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def gather_across_processes(value: Tensor) -> Tensor:
    """Concatenate equally sized tensors from all DDP processes along dim 0.

    Args:
        value: the local tensor.

    Returns:
        All processes' tensors, concatenated (the tensor itself outside DDP).
    """
    if not _distributed():
        return value
    gathered = value.new_empty(
        (dist.get_world_size() * value.shape[0], *value.shape[1:])
    )
    dist.all_gather_into_tensor(gathered, value.contiguous())
    return gathered


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
        multilabel: True for policies of multi-label (sigmoid) models.
        strong_views: strong views made of each unlabelled sample per step.
        projection_dim: size of the L2-normalised embeddings the policy needs from
            a projection head on each network; None for none.
        loss_weights: weights of the losses other than ``unsupervised_loss`` that
            :meth:`unsupervised_losses` returns (1 where not listed).
    """

    multilabel: ClassVar[bool] = False
    strong_views: ClassVar[int] = 1

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
                :attr:`projection_dim` asks for them.
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
            :meth:`consistency_loss`, plus any loss named in :attr:`loss_weights`.
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


class FixMatch(WeakViewPolicy):
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
        _check_threshold('threshold', threshold)
        self.threshold = threshold

    def forward(self, probs: Tensor, index: Tensor) -> PseudoLabels:  # noqa: D102
        confidence, targets = probs.max(dim=1)
        return PseudoLabels(targets, (confidence >= self.threshold).float())

    def diagnostics(self) -> Mapping[str, Tensor]:  # noqa: D102
        return {'threshold': torch.tensor(self.threshold)}


class FreeMatch(WeakViewPolicy):
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
        _check_momentum(ema)
        self.ema = ema
        self.fairness_weight = fairness_weight
        uniform = torch.full((num_classes,), 1.0 / num_classes)
        self.register_buffer('global_threshold', torch.tensor(1.0 / num_classes))
        self.register_buffer('class_probs', uniform.clone())
        self.register_buffer('label_histogram', uniform.clone())

    @property
    def class_thresholds(self) -> Tensor:
        """Per-class thresholds: the global one times MaxNorm class probabilities."""
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
            keep = self.ema
            self.global_threshold.mul_(keep).add_((1 - keep) * batch[0])
            self.class_probs.mul_(keep).add_(
                (1 - keep) * batch[1 : 1 + self.num_classes]
            )
            self.label_histogram.mul_(keep).add_(
                (1 - keep) * batch[1 + self.num_classes :]
            )
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


class FlexMatch(WeakViewPolicy):
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
        _check_threshold('threshold', threshold)
        self.threshold = threshold
        self.warmup = warmup
        self.register_buffer('selected', torch.full((num_samples,), -1))
        self.register_buffer('learning_status', torch.zeros(num_classes))

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


class SoftMatch(WeakViewPolicy):
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
        _check_momentum(ema)
        self.ema = ema
        self.n_sigma = n_sigma
        self.uniform_alignment = uniform_alignment
        self.register_buffer(
            'class_probs', torch.full((num_classes,), 1.0 / num_classes)
        )
        self.register_buffer('confidence_mean', torch.tensor(1.0 / num_classes))
        self.register_buffer('confidence_var', torch.tensor(1.0))

    def forward(self, probs: Tensor, index: Tensor) -> PseudoLabels:  # noqa: D102
        keep = self.ema
        if self.uniform_alignment:
            if self.training:
                batch_probs = mean_across_processes(probs.mean(dim=0))
                self.class_probs.mul_(keep).add_((1 - keep) * batch_probs)
            aligned = probs / (self.class_probs + 1e-6) / self.num_classes
            probs = aligned / aligned.sum(dim=1, keepdim=True)
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
            self.confidence_mean.mul_(keep).add_((1 - keep) * batch[0])
            self.confidence_var.mul_(keep).add_((1 - keep) * batch[1])
        below = torch.clamp(confidence - self.confidence_mean, max=0.0)
        weights = torch.exp(-(below**2) / (2 * self.confidence_var / self.n_sigma**2))
        return PseudoLabels(targets, weights)

    def diagnostics(self) -> Mapping[str, Tensor]:  # noqa: D102
        return {
            'confidence_mean': self.confidence_mean,
            'confidence_var': self.confidence_var,
        }


class Dash(WeakViewPolicy):
    """A loss threshold that falls over training, set by the labelled loss.

    Xu et al., Dash, ICML 2021. For ``warmup_steps`` training steps no unlabelled
    sample is kept (supervised warm-up) while the policy follows the labelled
    cross-entropy with a moving average; at the end of warm-up that average is
    ``rho_hat``. Then the k-th step after warm-up (k = 1, 2, ...) is in stage
    ``t = 1 + (k - 1) // decay_every``, with the threshold
    ``rho_t = max(scale * gamma^-(t - 1) * rho_hat, rho_min)``. A sample is kept
    when the cross-entropy of its weak view against its hard pseudo-label,
    ``-log(max p)``, is below ``rho_t``.

    ``rho_hat`` comes from the labelled training batches, not, as in USB, from the
    evaluation set, whose labels training must not see. Pseudo-labels are hard
    throughout (USB sharpens soft ones until ``rho_t`` reaches ``rho_min``).
    """

    def __init__(
        self,
        num_classes: int,
        warmup_steps: int = 2048,
        decay_every: int = 10240,
        gamma: float = 1.27,
        scale: float = 1.0001,
        rho_min: float = 0.05,
        ema: float = 0.99,
    ) -> None:
        """Initialise the policy.

        Args:
            num_classes: number of classes.
            warmup_steps: supervised steps before pseudo-labels are used.
            decay_every: steps per stage of the threshold (USB: 10 epochs of 1,024).
            gamma: the threshold's decay per stage (> 1).
            scale: the threshold's scale at the first stage (the paper's C).
            rho_min: the threshold's floor.
            ema: momentum of the labelled-loss average.
        """
        super().__init__(num_classes)
        _check_momentum(ema)
        if warmup_steps < 1 or decay_every < 1:
            raise GeosslInputError(
                'warmup_steps' if warmup_steps < 1 else 'decay_every',
                'must be a positive number of steps',
            )
        if gamma <= 1 or scale <= 0 or rho_min <= 0:
            raise GeosslInputError(
                'algorithm_options', 'dash needs gamma > 1, scale > 0 and rho_min > 0'
            )
        self.warmup_steps = warmup_steps
        self.decay_every = decay_every
        self.gamma = gamma
        self.scale = scale
        self.rho_min = rho_min
        self.ema = ema
        self.register_buffer('step', torch.tensor(0))
        self.register_buffer('labelled_loss', torch.tensor(float('nan')))

    @property
    def warming_up(self) -> bool:
        """Whether the supervised warm-up is still running."""
        return int(self.step) <= self.warmup_steps

    def threshold(self) -> Tensor:
        """The current loss threshold ``rho_t`` (0 during warm-up)."""
        if self.warming_up:
            return torch.zeros_like(self.labelled_loss)
        stage = 1 + (int(self.step) - self.warmup_steps - 1) // self.decay_every
        rho = self.scale * self.gamma ** -(stage - 1) * self.labelled_loss
        return rho.clamp(min=self.rho_min)

    def pseudo_label(  # noqa: D102
        self,
        logits: ViewRows,
        embeddings: ViewRows | None,
        labels: Tensor,
        index: Tensor,
    ) -> PseudoLabels:
        self.observe_labelled(logits.labelled.detach(), labels)
        return super().pseudo_label(logits, embeddings, labels, index)

    def observe_labelled(self, logits: Tensor, labels: Tensor) -> None:
        """Count a training step and, during warm-up, average its labelled loss.

        Args:
            logits: ``(B, K)`` logits of the labelled weak views, detached.
            labels: their labels.
        """
        if not self.training:
            return
        self.step.add_(1)
        if not self.warming_up:
            return  # rho_hat is fixed at the end of warm-up.
        loss = mean_across_processes(F.cross_entropy(logits, labels).detach())
        if self.labelled_loss.isnan():
            self.labelled_loss.copy_(loss)
        else:
            self.labelled_loss.mul_(self.ema).add_((1 - self.ema) * loss)

    def forward(self, probs: Tensor, index: Tensor) -> PseudoLabels:  # noqa: D102
        confidence, targets = probs.max(dim=1)
        loss = -confidence.clamp(min=1e-12).log()
        return PseudoLabels(targets, (loss < self.threshold()).float())

    def diagnostics(self) -> Mapping[str, Tensor]:  # noqa: D102
        return {'threshold': self.threshold(), 'rho_hat': self.labelled_loss}


@dataclass
class GraphPseudoLabels(PseudoLabels):
    """CoMatch's pseudo-labels: soft targets, and the graph the embeddings learn.

    Attributes:
        probs: ``(B, K)`` memory-smoothed class probabilities, the strong view's
            soft targets (``targets`` is their arg max).
        graph: ``(B, B)`` pseudo-label graph, rows summing to 1: how strongly
            sample i's embedding should be drawn to sample j's.
    """

    probs: Tensor
    graph: Tensor


class CoMatch(PseudoLabelPolicy):
    """Class probabilities and embeddings that regularise each other.

    Li, Xiong and Hoi, CoMatch, ICCV 2021, with USB's defaults. Each network gets a
    projection head (:attr:`projection_dim`) and each unlabelled sample two strong
    views. Per step, from the pseudo-labelling network's weak views:

    1. *distribution alignment*: the probabilities are divided by the mean class
       distribution of the last ``alignment_steps`` batches and renormalised, which
       pulls the predictions towards balanced classes;
    2. *memory smoothing*, once the memory bank is full:
       ``p = alpha p + (1 - alpha) A q``, with ``A`` the softmax over the bank of
       the embeddings' similarities / ``temperature`` and ``q`` the bank's class
       probabilities;
    3. a sample is kept where its smoothed confidence reaches ``threshold``; its
       first strong view learns the smoothed probabilities (soft cross-entropy);
    4. the *pseudo-label graph* ``W = p p^T``, with self-loops, without edges below
       ``graph_threshold`` and with rows normalised, is the target of the
       contrastive loss: the cross-entropy from ``W`` to the softmax of the
       similarities / ``temperature`` between the first and the second strong
       views' embeddings;
    5. the bank then takes the weak views' embeddings with their aligned (not
       smoothed) probabilities, and the labelled views' embeddings with their
       one-hot labels.

    The bank and the alignment history are buffers, so they checkpoint and resume.
    """

    strong_views = 2

    def __init__(
        self,
        num_classes: int,
        threshold: float = 0.95,
        graph_threshold: float = 0.8,
        alpha: float = 0.9,
        temperature: float = 0.2,
        contrast_weight: float = 1.0,
        projection_dim: int = 64,
        bank_size: int = 2560,
        alignment_steps: int = 32,
    ) -> None:
        """Initialise the policy.

        Args:
            num_classes: number of classes.
            threshold: the smoothed confidence a pseudo-label needs.
            graph_threshold: the least similarity of two samples' probabilities
                that links them in the pseudo-label graph.
            alpha: weight of a sample's own probabilities against its neighbours'
                in the bank.
            temperature: temperature of the embedding similarities.
            contrast_weight: weight of the contrastive loss.
            projection_dim: size of the embeddings.
            bank_size: samples in the memory bank (USB: 5 steps of 64 + 448).
            alignment_steps: batches whose mean class distribution is aligned.
        """
        super().__init__(num_classes)
        _check_threshold('threshold', threshold)
        _check_threshold('graph_threshold', graph_threshold)
        if not 0.0 <= alpha <= 1.0:
            raise GeosslInputError('alpha', f'is {alpha}; it must be in [0, 1]')
        if temperature <= 0:
            raise GeosslInputError('temperature', f'is {temperature}; it must be > 0')
        for name, size in (
            ('projection_dim', projection_dim),
            ('bank_size', bank_size),
            ('alignment_steps', alignment_steps),
        ):
            if size < 1:
                raise GeosslInputError(name, f'is {size}; it must be at least 1')
        self.threshold = threshold
        self.graph_threshold = graph_threshold
        self.alpha = alpha
        self.temperature = temperature
        self.projection_dim = projection_dim
        self.loss_weights = {'contrastive_loss': contrast_weight}
        self.bank = RingBuffer(bank_size, projection_dim + num_classes)
        self.class_history = RingBuffer(alignment_steps, num_classes)

    def class_prior(self) -> Tensor:
        """Mean class distribution of the remembered batches (uniform before any)."""
        history = self.class_history.stored()
        if not len(history):
            return torch.full_like(self.class_history.rows[0], 1 / self.num_classes)
        return history.mean(dim=0)

    def align(self, probs: Tensor) -> Tensor:
        """Distribution alignment (remembering the batch in training mode).

        Args:
            probs: ``(B, K)`` weak-view probabilities.

        Returns:
            ``(B, K)`` probabilities divided by the class prior, renormalised.
        """
        if self.training:
            self.class_history.push(mean_across_processes(probs.mean(dim=0))[None])
        aligned = probs / (self.class_prior() + 1e-6)
        return aligned / aligned.sum(dim=1, keepdim=True)

    def smooth(self, probs: Tensor, embeddings: Tensor) -> Tensor:
        """Memory smoothing: mix in the probabilities of similar remembered samples.

        Args:
            probs: ``(B, K)`` aligned probabilities.
            embeddings: ``(B, D)`` embeddings of the same views.

        Returns:
            ``(B, K)`` smoothed probabilities; ``probs`` until the bank is full.
        """
        if not self.bank.full:
            return probs
        remembered, remembered_probs = self.bank.rows.split(
            [self.projection_dim, self.num_classes], dim=1
        )
        affinity = (embeddings @ remembered.T / self.temperature).softmax(dim=1)
        return self.alpha * probs + (1 - self.alpha) * affinity @ remembered_probs

    def graph(self, probs: Tensor) -> Tensor:
        """The pseudo-label graph of a batch.

        Args:
            probs: ``(B, K)`` smoothed probabilities.

        Returns:
            ``(B, B)``: ``p_i . p_j`` (1 on the diagonal) where it reaches
            ``graph_threshold``, else 0, each row divided by its sum.
        """
        similarity = probs @ probs.T
        similarity.fill_diagonal_(1.0)
        edges = similarity * (similarity >= self.graph_threshold)
        return edges / edges.sum(dim=1, keepdim=True)

    def pseudo_label(  # noqa: D102
        self,
        logits: ViewRows,
        embeddings: ViewRows | None,
        labels: Tensor,
        index: Tensor,
    ) -> GraphPseudoLabels:
        probs = self.align(self.probabilities(logits.weak.detach().float()))
        weak = embeddings.weak.detach().float()
        smoothed = self.smooth(probs, weak)
        confidence, targets = smoothed.max(dim=1)
        if self.training:
            labelled = torch.cat(
                [
                    embeddings.labelled.detach().float(),
                    F.one_hot(labels, self.num_classes).to(probs.dtype),
                ],
                dim=1,
            )
            remembered = torch.cat([torch.cat([weak, probs], dim=1), labelled])
            self.bank.push(gather_across_processes(remembered))
        weights = (confidence >= self.threshold).float()
        return GraphPseudoLabels(targets, weights, smoothed, self.graph(smoothed))

    def consistency_loss(self, logits: Tensor, pseudo: PseudoLabels) -> Tensor:
        """Weighted soft cross-entropy of the strong view against ``pseudo.probs``.

        Args:
            logits: ``(B, K)`` strong-view logits.
            pseudo: :class:`GraphPseudoLabels` of the same samples.

        Returns:
            The scalar loss (mean over the whole batch).
        """
        loss = F.cross_entropy(logits, pseudo.probs, reduction='none')
        return (loss * pseudo.weights).mean()

    def unsupervised_losses(  # noqa: D102
        self, logits: ViewRows, embeddings: ViewRows | None, pseudo: PseudoLabels
    ) -> dict[str, Tensor]:
        losses = super().unsupervised_losses(logits, embeddings, pseudo)
        first, second = embeddings.strong
        similarity = first @ second.T / self.temperature
        log_affinity = similarity.log_softmax(dim=1)
        losses['contrastive_loss'] = -(pseudo.graph * log_affinity).sum(dim=1).mean()
        return losses

    def diagnostics(self) -> Mapping[str, Tensor]:  # noqa: D102
        return {
            'threshold': torch.tensor(self.threshold),
            'class_prior': self.class_prior(),
        }


class MultiLabelThreshold(WeakViewPolicy):
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
        _check_threshold('positive', positive)
        _check_threshold('negative', negative)
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


class MultiLabelFreeMatch(WeakViewPolicy):
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
        _check_momentum(ema)
        self.ema = ema
        # A binary decision at chance has confidence 0.5.
        self.register_buffer('global_threshold', torch.tensor(0.5))
        self.register_buffer('class_confidence', torch.full((num_classes,), 0.5))

    @property
    def class_thresholds(self) -> Tensor:
        """Per-class thresholds: the global one scaled by MaxNorm class confidences."""
        return (
            self.global_threshold * self.class_confidence / self.class_confidence.max()
        )

    def forward(self, probs: Tensor, index: Tensor) -> PseudoLabels:  # noqa: D102
        confidence = torch.maximum(probs, 1.0 - probs)
        if self.training:
            batch = mean_across_processes(
                torch.cat([confidence.mean()[None], confidence.mean(dim=0)])
            )
            keep = self.ema
            self.global_threshold.mul_(keep).add_((1 - keep) * batch[0])
            self.class_confidence.mul_(keep).add_((1 - keep) * batch[1:])
        weights = (confidence >= self.class_thresholds).float()
        return PseudoLabels((probs >= 0.5).float(), weights)

    def diagnostics(self) -> Mapping[str, Tensor]:  # noqa: D102
        return {
            'global_threshold': self.global_threshold,
            'threshold': self.class_thresholds,
        }


#: Policies by the name the ``algorithm`` option takes.
POLICIES: dict[str, type[PseudoLabelPolicy]] = {
    'fixmatch': FixMatch,
    'freematch': FreeMatch,
    'flexmatch': FlexMatch,
    'softmatch': SoftMatch,
    'dash': Dash,
    'comatch': CoMatch,
    'multilabel': MultiLabelThreshold,
    'multilabel_freematch': MultiLabelFreeMatch,
}

#: The algorithm name of supervised training (labelled data only, no policy).
SUPERVISED = 'supervised'


def build_policy(
    algorithm: str,
    num_classes: int,
    multilabel: bool,
    num_samples: int | None = None,
    options: Mapping[str, object] | None = None,
) -> PseudoLabelPolicy | None:
    """Build the policy an algorithm name stands for.

    Args:
        algorithm: ``'supervised'`` or a key of :data:`POLICIES`.
        num_classes: number of classes.
        multilabel: whether the data is multi-label.
        num_samples: dataset size, for policies that remember samples (FlexMatch).
        options: keyword arguments of the policy (e.g. ``{'threshold': 0.9}``).

    Returns:
        The policy, or None for supervised training.

    Raises:
        GeosslInputError: for an unknown name, a policy of the other kind of data
            (multi-class vs multi-label), or bad options.
    """
    if algorithm == SUPERVISED:
        return None
    if algorithm not in POLICIES:
        names = ', '.join([SUPERVISED, *POLICIES])
        raise GeosslInputError('algorithm', f'{algorithm!r} is not one of {names}')
    policy_class = POLICIES[algorithm]
    if policy_class.multilabel != multilabel:
        kind = 'multi-label' if multilabel else 'multi-class'
        fitting = [
            name for name, cls in POLICIES.items() if cls.multilabel == multilabel
        ]
        raise GeosslInputError(
            'algorithm',
            f'{algorithm} does not fit {kind} data; use one of '
            f'{", ".join([SUPERVISED, *fitting])}',
        )
    arguments = dict(options or {})
    if policy_class is FlexMatch:
        if num_samples is None:
            raise GeosslInputError(
                'num_samples', 'flexmatch needs the size of the dataset it indexes'
            )
        arguments['num_samples'] = num_samples
    try:
        return policy_class(num_classes, **arguments)
    except TypeError as error:
        raise GeosslInputError('algorithm_options', str(error)) from None
