"""CoMatch: class probabilities and embeddings that regularise each other."""

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from geossl.errors import GeosslInputError
from geossl.ssl.alignment import align_distribution
from geossl.ssl.distributed import gather_across_processes, mean_across_processes
from geossl.ssl.policies.base import (
    PseudoLabelPolicy,
    PseudoLabels,
    ViewRows,
    check_threshold,
)
from geossl.ssl.ring_buffer import RingBuffer


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


class CoMatch(PseudoLabelPolicy, name='comatch', display_name='CoMatch'):
    """Class probabilities and embeddings that regularise each other.

    Li, Xiong and Hoi, CoMatch, ICCV 2021, with USB's defaults. Each network gets a
    projection head (``projection_dim``) and each unlabelled sample two strong
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
        check_threshold('threshold', threshold)
        check_threshold('graph_threshold', graph_threshold)
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
        return align_distribution(probs, self.class_prior())

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
