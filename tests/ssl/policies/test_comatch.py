"""CoMatch."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geossl.ssl.policies.comatch import CoMatch
from tests.ssl.policies.common import INDEX, batches, pseudo_label_step, rows


def _comatch(**options: object) -> CoMatch:
    """Two classes, 2-d embeddings, temperature 1 and alpha 0.5: easy arithmetic."""
    defaults = {'alpha': 0.5, 'temperature': 1.0, 'projection_dim': 2}
    return CoMatch(2, **(defaults | options)).train()


def test_comatch_aligns_distributions_over_recent_batches():
    policy = _comatch(alignment_steps=2)
    weak = torch.tensor([[0.8, 0.2], [0.6, 0.4]])
    # First batch: its mean [0.7, 0.3] is the whole history.
    # [0.8 / 0.7, 0.2 / 0.3] = [1.1429, 0.6667] -> [0.6316, 0.3684];
    # [0.6 / 0.7, 0.4 / 0.3] = [0.8571, 1.3333] -> [0.3913, 0.6087].
    torch.testing.assert_close(
        policy.align(weak),
        torch.tensor([[0.6316, 0.3684], [0.3913, 0.6087]]),
        atol=1e-4,
        rtol=0,
    )
    # A second batch of mean [0.3, 0.7]: the prior is the mean [0.5, 0.5] of the
    # two, so nothing moves; a third pushes the first out.
    other = torch.tensor([[0.3, 0.7], [0.3, 0.7]])
    torch.testing.assert_close(policy.align(other), other)
    torch.testing.assert_close(policy.class_prior(), torch.tensor([0.5, 0.5]))
    policy.align(other)
    torch.testing.assert_close(policy.class_prior(), torch.tensor([0.3, 0.7]))


def test_comatch_step_by_hand():
    policy = _comatch(threshold=0.6, graph_threshold=0.5, bank_size=2)
    # A full bank: embedding (1, 0) with class 0, (0, 1) with class 1.
    policy.bank.push(torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]))
    # Three weak views at [0.5, 0.5] (no alignment to do), embedded at (1, 0),
    # (0, 1) and (1, 0); one labelled view of class 1 at (0.6, 0.8).
    logits = rows(
        [[0.0, 0.0]],
        [[0.0, 0.0]] * 3,
        [[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]],
        [[0.0, 0.0]] * 3,
    )
    embeddings = rows(
        [[0.6, 0.8]],
        [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]],
        [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]],
        [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]],
    )
    pseudo = policy.pseudo_label(logits, embeddings, torch.tensor([1]), INDEX)
    # Smoothing of sample 1: A = softmax([1, 0]) = [0.7311, 0.2689], A q = A;
    # 0.5 * [0.5, 0.5] + 0.5 * [0.7311, 0.2689] = [0.6155, 0.3845].
    torch.testing.assert_close(
        pseudo.probs,
        torch.tensor([[0.6155, 0.3845], [0.3845, 0.6155], [0.6155, 0.3845]]),
        atol=1e-4,
        rtol=0,
    )
    assert pseudo.targets.tolist() == [0, 1, 0]
    assert pseudo.weights.tolist() == [1.0, 1.0, 1.0]  # 0.6155 >= 0.6
    # Graph: p1 . p3 = 0.6155^2 + 0.3845^2 = 0.5267 >= 0.5 links 1 and 3;
    # p1 . p2 = 0.4733 does not. Row 1: [1, 0, 0.5267] / 1.5267.
    torch.testing.assert_close(
        pseudo.graph,
        torch.tensor([[0.6550, 0.0, 0.3450], [0.0, 1.0, 0.0], [0.3450, 0.0, 0.6550]]),
        atol=1e-4,
        rtol=0,
    )
    # The bank keeps the last two of [weak 1-3 with aligned p, labelled one-hot].
    torch.testing.assert_close(
        policy.bank.rows, torch.tensor([[1.0, 0.0, 0.5, 0.5], [0.6, 0.8, 0.0, 1.0]])
    )
    losses = policy.unsupervised_losses(logits, embeddings, pseudo)
    # Soft cross-entropy: strong [2, 0] has log-probabilities [-0.1269, -2.1269],
    # 0.6155 * 0.1269 + 0.3845 * 2.1269 = 0.8959 (and the mirror image for [0, 2]);
    # [0, 0] gives log 2 = 0.6931. Mean (all kept): 0.8283.
    assert losses['unsupervised_loss'].item() == pytest.approx(0.8283, abs=1e-4)
    # Contrastive: similarities of the first strong views to the second ones,
    # rows [1, 0, 0], [0, 1, 1], [1, 0, 0]; log-softmax of the first is
    # [1, 0, 0] - log(e + 2) = [-0.5514, -1.5514, -1.5514]; of the second
    # [0, 1, 1] - log(1 + 2e) = [-1.8620, -0.8620, -0.8620]. Cross-entropy with
    # the graph rows: 0.8964, 0.8620, 1.2065; mean 0.9883.
    assert losses['contrastive_loss'].item() == pytest.approx(0.9883, abs=1e-4)
    assert policy.loss_weights == {'contrastive_loss': 1.0}


def test_comatch_smooths_only_with_a_full_bank():
    policy = _comatch(threshold=0.6, bank_size=4)
    logits = rows([[0.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]])
    embeddings = rows([[0.0, 1.0]], [[1.0, 0.0]], [[1.0, 0.0]], [[1.0, 0.0]])
    labels = torch.tensor([0])
    first = policy.pseudo_label(logits, embeddings, labels, INDEX[:1])
    second = policy.pseudo_label(logits, embeddings, labels, INDEX[:1])
    # Two steps of two rows fill the bank; until then [0.5, 0.5] stays as it is.
    assert first.probs.tolist() == second.probs.tolist() == [[0.5, 0.5]]
    assert first.weights.tolist() == second.weights.tolist() == [0.0]
    assert policy.bank.full
    # Bank: (1, 0) twice at [0.5, 0.5], (0, 1) twice as class 0. A = softmax of
    # [1, 0, 1, 0] over the four = [0.3655, 0.1345] each; A q = [0.6345, 0.3655];
    # smoothed 0.5 * [0.5, 0.5] + 0.5 * A q = [0.5672, 0.4328].
    third = policy.pseudo_label(logits, embeddings, labels, INDEX[:1])
    torch.testing.assert_close(
        third.probs, torch.tensor([[0.5672, 0.4328]]), atol=1e-4, rtol=0
    )


def test_comatch_state_is_in_its_checkpoint_and_evaluation_leaves_it():
    policy = _comatch(bank_size=8, alignment_steps=4)
    logits = rows([[1.0, 0.0]], [[2.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]])
    embeddings = rows([[0.0, 1.0]], [[1.0, 0.0]], [[1.0, 0.0]], [[0.0, 1.0]])
    policy.pseudo_label(logits, embeddings, torch.tensor([1]), INDEX[:1])
    state = {k: v.clone() for k, v in policy.state_dict().items()}
    assert set(state) == {
        'bank.rows',
        'bank.pushed',
        'class_history.rows',
        'class_history.pushed',
    }
    assert state['bank.pushed'].item() == 2
    policy.eval().pseudo_label(logits, embeddings, torch.tensor([1]), INDEX[:1])
    assert all(torch.equal(v, state[k]) for k, v in policy.state_dict().items())
    restored = _comatch(bank_size=8, alignment_steps=4)
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.class_prior(), policy.class_prior())


@settings(deadline=None, max_examples=40)
@given(
    classes=st.integers(2, 6),
    size=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_comatch_targets_and_graph_rows_are_distributions(classes, size, seed):
    policy = CoMatch(classes, bank_size=8, alignment_steps=2, projection_dim=3)
    policy.train()
    for step, logits in enumerate(batches(seed, classes, 4, size)):
        pseudo = pseudo_label_step(policy, logits, torch.arange(size), seed + step)
        ones = torch.ones(size)
        torch.testing.assert_close(pseudo.probs.sum(dim=1), ones)
        torch.testing.assert_close(pseudo.graph.sum(dim=1), ones)
        assert bool((pseudo.graph.diagonal() > 0).all())
        # Linked both ways: the graph's edges are symmetric.
        assert torch.equal(pseudo.graph > 0, (pseudo.graph > 0).T)
        assert torch.equal(pseudo.targets, pseudo.probs.argmax(dim=1))
    assert policy.bank.full  # 4 steps of at least 3 rows fill 8 slots
