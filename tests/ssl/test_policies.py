import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from geossl.errors import GeosslInputError
from geossl.ssl.policies import (
    POLICIES,
    CoMatch,
    Dash,
    FixMatch,
    FlexMatch,
    FreeMatch,
    MultiLabelFreeMatch,
    MultiLabelThreshold,
    PseudoLabelPolicy,
    PseudoLabels,
    SoftMatch,
    ViewRows,
    build_policy,
)

PROBS = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
INDEX = torch.arange(2)


def test_fixmatch_keeps_confident_hard_labels():
    pseudo = FixMatch(2, threshold=0.8)(PROBS, INDEX)
    assert pseudo.targets.tolist() == [0, 0]
    assert pseudo.weights.tolist() == [1.0, 0.0]


def test_freematch_thresholds_and_fairness():
    policy = FreeMatch(2, ema=0.5).train()
    pseudo = policy(PROBS, INDEX)
    # Global: 0.5 * 1/2 + 0.5 * mean(0.9, 0.6) = 0.625.
    assert policy.global_threshold.item() == pytest.approx(0.625)
    # Class probabilities: 0.5 * [0.5, 0.5] + 0.5 * [0.75, 0.25].
    torch.testing.assert_close(policy.class_probs, torch.tensor([0.625, 0.375]))
    # Both predicted class 0: histogram 0.5 * [0.5, 0.5] + 0.5 * [1, 0].
    torch.testing.assert_close(policy.label_histogram, torch.tensor([0.75, 0.25]))
    # Class thresholds 0.625 * [0.625, 0.375] / 0.625: sample 2 (0.6 < 0.625) drops.
    torch.testing.assert_close(policy.class_thresholds, torch.tensor([0.625, 0.375]))
    assert pseudo.weights.tolist() == [1.0, 0.0]
    # Fairness on one kept strong view predicting class 0 (p = 0.8808):
    # expected = SumNorm([0.625 / 0.75, 0.375 / 0.25]) = [0.3571, 0.6429];
    # observed = SumNorm([0.8808 / 1, 0.1192 * 0]) = [1, 0];
    # loss = 0.3571 * log(1) + 0.6429 * log(1e-12) = -17.763.
    fairness = policy.fairness_loss(torch.tensor([[2.0, 0.0]]))
    assert fairness.item() == pytest.approx(-17.763, abs=1e-3)


def test_flexmatch_curriculum_from_selected_samples():
    policy = FlexMatch(2, num_samples=4, threshold=0.9).train()
    # No sample selected yet: every threshold is 0 (warm-up), all are kept.
    first = policy(torch.tensor([[0.95, 0.05], [0.3, 0.7]]), torch.tensor([0, 1]))
    assert first.weights.tolist() == [1.0, 1.0]
    assert policy.selected.tolist() == [0, -1, -1, -1]
    # Counts: 3 unselected, 1 of class 0, 0 of class 1; warm-up normaliser 3.
    # Status [1/3, 0] -> thresholds 0.9 * (1/3) / (2 - 1/3) = 0.18 and 0.
    second = policy(torch.tensor([[0.15, 0.85], [0.85, 0.15]]), torch.tensor([2, 3]))
    torch.testing.assert_close(policy.class_thresholds, torch.tensor([0.18, 0.0]))
    assert second.weights.tolist() == [1.0, 1.0]
    assert policy.selected.tolist() == [0, -1, -1, -1]
    policy.eval()
    policy(torch.tensor([[0.99, 0.01]]), torch.tensor([1]))
    assert policy.selected.tolist() == [0, -1, -1, -1]
    with pytest.raises(GeosslInputError, match='num_samples: is 4 but a sample'):
        policy(PROBS, torch.tensor([0, 4]))


def test_softmatch_weights_after_uniform_alignment():
    policy = SoftMatch(2, ema=0.5).train()
    pseudo = policy(PROBS, INDEX)
    # Class probabilities 0.5 * [0.5, 0.5] + 0.5 * [0.75, 0.25] = [0.625, 0.375];
    # aligned rows: SumNorm([0.9 / 0.625, 0.1 / 0.375]) = [0.8438, 0.1562] and
    # SumNorm([0.6 / 0.625, 0.4 / 0.375]) = [0.4737, 0.5263]: sample 2 flips to 1.
    assert pseudo.targets.tolist() == [0, 1]
    # Confidence mean 0.5 * 0.5 + 0.5 * 0.6850 = 0.5925; variance (unbiased)
    # 0.5 * 1 + 0.5 * 0.05038 = 0.5252; weight of sample 2:
    # exp(-(0.5263 - 0.5925)^2 / (2 * 0.5252 / 2^2)) = 0.9834.
    assert policy.confidence_mean.item() == pytest.approx(0.5925, abs=1e-4)
    assert policy.confidence_var.item() == pytest.approx(0.5252, abs=1e-4)
    assert pseudo.weights.tolist() == pytest.approx([1.0, 0.9834], abs=1e-4)


def _observe(policy: Dash, loss: float, steps: int = 1) -> None:
    """Labelled steps whose cross-entropy is exactly ``loss`` (two classes)."""
    # CE of logits [a, 0] against class 0 is log(1 + e^-a): pick a for the loss.
    logit = -torch.log(torch.expm1(torch.tensor(loss)))
    logits = torch.stack([logit, torch.tensor(0.0)])[None]
    for _ in range(steps):
        policy.observe_labelled(logits, torch.tensor([0]))


def test_dash_warms_up_on_labelled_loss_then_lowers_its_threshold():
    policy = Dash(2, warmup_steps=3, decay_every=2, gamma=2.0, scale=1.0, ema=0.5)
    policy.train()
    confident = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    # Warm-up: supervised only, while the labelled loss is averaged.
    for loss in (0.8, 0.4, 0.6):
        _observe(policy, loss)
        assert policy(confident, torch.arange(3)).weights.tolist() == [0, 0, 0]
    # EMA 0.5 from the first loss: 0.8 -> 0.6 -> 0.6.
    assert policy.labelled_loss.item() == pytest.approx(0.6)
    # Stage 1 (steps 4, 5): rho = 0.6. Kept where -log(max p) < rho:
    # -log 0.9 = 0.105, -log 0.6 = 0.511, -log 0.7 = 0.357.
    _observe(policy, 5.0)  # after warm-up the labelled loss no longer counts
    pseudo = policy(confident, torch.arange(3))
    assert pseudo.targets.tolist() == [0, 0, 1]
    assert pseudo.weights.tolist() == [1, 1, 1]
    assert policy.threshold().item() == pytest.approx(0.6)
    # Stage 2 (steps 6, 7): rho = 0.3 keeps the 0.9 only.
    _observe(policy, 5.0, steps=2)
    assert policy.threshold().item() == pytest.approx(0.3)
    assert policy(confident, torch.arange(3)).weights.tolist() == [1, 0, 0]
    # Later stages stop at the floor.
    _observe(policy, 5.0, steps=20)
    assert policy.threshold().item() == pytest.approx(0.05)
    assert policy(confident, torch.arange(3)).weights.tolist() == [0, 0, 0]
    assert policy.labelled_loss.item() == pytest.approx(0.6)


def test_dash_state_is_in_its_checkpoint_and_evaluation_leaves_it():
    policy = Dash(2, warmup_steps=2).train()
    _observe(policy, 0.7, steps=3)
    state = {k: v.clone() for k, v in policy.state_dict().items()}
    assert state['step'].item() == 3
    assert state['labelled_loss'].item() == pytest.approx(0.7)
    policy.eval()
    _observe(policy, 2.0)
    policy(PROBS, INDEX)
    assert all(torch.equal(v, state[k]) for k, v in policy.state_dict().items())
    restored = Dash(2, warmup_steps=2)
    restored.load_state_dict(state)
    assert restored.threshold() == policy.threshold()


def _comatch(**options: object) -> CoMatch:
    """Two classes, 2-d embeddings, temperature 1 and alpha 0.5: easy arithmetic."""
    defaults = {'alpha': 0.5, 'temperature': 1.0, 'projection_dim': 2}
    return CoMatch(2, **(defaults | options)).train()


def _rows(labelled: list, weak: list, first: list, second: list) -> ViewRows:
    tensor = torch.tensor
    return ViewRows(tensor(labelled), tensor(weak), tensor([first, second]))


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
    logits = _rows(
        [[0.0, 0.0]],
        [[0.0, 0.0]] * 3,
        [[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]],
        [[0.0, 0.0]] * 3,
    )
    embeddings = _rows(
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
    logits = _rows([[0.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]])
    embeddings = _rows([[0.0, 1.0]], [[1.0, 0.0]], [[1.0, 0.0]], [[1.0, 0.0]])
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
    logits = _rows([[1.0, 0.0]], [[2.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]])
    embeddings = _rows([[0.0, 1.0]], [[1.0, 0.0]], [[1.0, 0.0]], [[0.0, 1.0]])
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


def test_multilabel_threshold_keeps_clear_classes():
    pseudo = MultiLabelThreshold(3)(torch.tensor([[0.8, 0.5, 0.01]]), INDEX[:1])
    assert pseudo.targets.tolist() == [[1.0, 0.0, 0.0]]
    assert pseudo.weights.tolist() == [[1.0, 0.0, 1.0]]


def test_multilabel_freematch_per_class_thresholds():
    policy = MultiLabelFreeMatch(2, ema=0.5).train()
    pseudo = policy(torch.tensor([[0.9, 0.4], [0.55, 0.5]]), INDEX)
    # Confidences [[0.9, 0.6], [0.55, 0.5]]: global 0.5 * 0.5 + 0.5 * 0.6375;
    # classes 0.5 * 0.5 + 0.5 * [0.725, 0.55] = [0.6125, 0.525].
    torch.testing.assert_close(policy.class_thresholds, torch.tensor([0.56875, 0.4875]))
    assert pseudo.targets.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    assert pseudo.weights.tolist() == [[1.0, 1.0], [0.0, 1.0]]


def test_evaluation_mode_leaves_state_alone():
    for policy in (FreeMatch(2), SoftMatch(2), MultiLabelFreeMatch(2)):
        before = {k: v.clone() for k, v in policy.state_dict().items()}
        policy.eval()(PROBS, INDEX)
        for key, value in policy.state_dict().items():
            assert torch.equal(value, before[key]), key


def test_weighted_losses():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    pseudo = PseudoLabels(torch.tensor([0, 0]), torch.tensor([1.0, 0.0]))
    loss = FixMatch(2).consistency_loss(logits, pseudo)
    # Mean over the batch: CE of the kept sample / 2.
    assert loss.item() == pytest.approx(torch.log1p(torch.exp(torch.tensor(-2.0))) / 2)


def test_build_policy_errors():
    assert build_policy('supervised', 10, multilabel=False) is None
    assert isinstance(build_policy('flexmatch', 3, False, num_samples=5), FlexMatch)
    with pytest.raises(GeosslInputError, match="algorithm: 'mixmatch' is not one of"):
        build_policy('mixmatch', 10, multilabel=False)
    with pytest.raises(
        GeosslInputError, match='fixmatch does not fit multi-label data'
    ):
        build_policy('fixmatch', 19, multilabel=True)
    with pytest.raises(GeosslInputError, match=r'threshold: is 1\.5; a threshold must'):
        build_policy('fixmatch', 10, False, options={'threshold': 1.5})
    with pytest.raises(GeosslInputError, match='threshold: is 0'):
        build_policy('flexmatch', 10, False, num_samples=5, options={'threshold': 0})
    with pytest.raises(GeosslInputError, match=r'algorithm_options: .*tau'):
        build_policy('freematch', 10, False, options={'tau': 0.5})
    with pytest.raises(GeosslInputError, match='dash needs gamma > 1'):
        build_policy('dash', 10, False, options={'gamma': 0.9})
    with pytest.raises(
        GeosslInputError, match='warmup_steps: must be a positive number of steps'
    ):
        build_policy('dash', 10, False, options={'warmup_steps': 0})
    with pytest.raises(GeosslInputError, match='graph_threshold: is 0; a threshold'):
        build_policy('comatch', 10, False, options={'graph_threshold': 0})
    with pytest.raises(GeosslInputError, match='bank_size: is 0; it must be at least'):
        build_policy('comatch', 10, False, options={'bank_size': 0})
    with pytest.raises(GeosslInputError, match='comatch does not fit multi-label'):
        build_policy('comatch', 10, True)
    with pytest.raises(GeosslInputError, match=r'negative: is 0\.8; it must be below'):
        build_policy('multilabel', 5, True, options={'negative': 0.8})


def _ddp_worker(rank, port, results):
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2
    )
    probs = torch.tensor([[[0.9, 0.1], [0.6, 0.4]], [[0.2, 0.8], [0.7, 0.3]]])[rank]
    freematch = FreeMatch(2, ema=0.5).train()
    freematch(probs, torch.arange(2))
    flexmatch = FlexMatch(2, num_samples=4, threshold=0.75).train()
    flexmatch(probs, torch.arange(2) + 2 * rank)
    comatch = _comatch(bank_size=8)
    comatch.pseudo_label(
        ViewRows(probs[:1].log(), probs.log(), torch.zeros(2, 2, 2)),
        ViewRows(probs[:1], probs, torch.zeros(2, 2, 2)),
        torch.tensor([rank]),
        torch.arange(2),
    )
    results[rank] = {
        'freematch': {k: v.clone() for k, v in freematch.state_dict().items()},
        'selected': flexmatch.selected.clone(),
        'comatch': {k: v.clone() for k, v in comatch.state_dict().items()},
    }
    dist.destroy_process_group()


def test_policy_state_is_shared_across_ddp_processes():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    results = mp.get_context('spawn').Manager().dict()
    mp.spawn(_ddp_worker, args=(port, results), nprocs=2, join=True)
    # Each process ends with the state one process gets from the whole batch.
    single = FreeMatch(2, ema=0.5).train()
    single(
        torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3]]), torch.arange(4)
    )
    for rank in (0, 1):
        for key, value in single.state_dict().items():
            torch.testing.assert_close(results[rank]['freematch'][key], value)
        assert results[rank]['selected'].tolist() == [0, -1, 1, -1]
        # CoMatch: the mean class distribution of the whole batch, and a bank of
        # both processes' rows (weak views, then the labelled one, by rank).
        comatch = results[rank]['comatch']
        torch.testing.assert_close(
            comatch['class_history.rows'][0], torch.tensor([0.6, 0.4])
        )
        assert comatch['bank.pushed'].item() == 6
        embeddings = comatch['bank.rows'][:6, :2]
        torch.testing.assert_close(
            embeddings,
            torch.tensor(
                [[0.9, 0.1], [0.6, 0.4], [0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.2, 0.8]]
            ),
        )
        assert comatch['bank.rows'][:6, 2:].tolist()[2::3] == [[1.0, 0.0], [0.0, 1.0]]


def _batches(seed: int, classes: int, steps: int, size: int) -> list[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    scales = torch.rand(steps, size, 1, generator=generator) * 8
    return list(torch.randn(steps, size, classes, generator=generator) * scales)


#: Options under which a few small steps reach every branch of a policy.
SHORT = {
    'dash': {'warmup_steps': 1, 'decay_every': 1},
    'comatch': {'bank_size': 8, 'alignment_steps': 2, 'projection_dim': 3},
}


def _policy(name: str, classes: int, samples: int) -> PseudoLabelPolicy:
    multilabel = name.startswith('multilabel')
    return build_policy(name, classes, multilabel, samples, SHORT.get(name)).train()


def _step(
    policy: PseudoLabelPolicy, weak: Tensor, index: Tensor, seed: int
) -> PseudoLabels:
    """Pseudo-labels of weak-view logits, given as the training step gives them."""
    generator = torch.Generator().manual_seed(seed)
    size, classes = weak.shape
    views = policy.strong_views
    rows = 2 + (1 + views) * size
    logits = torch.randn(rows, classes, generator=generator)
    logits[2 : 2 + size] = weak
    if policy.multilabel:
        labels = torch.randint(2, (2, classes), generator=generator).float()
    else:
        labels = torch.randint(classes, (2,), generator=generator)
    embeddings = None
    if policy.projection_dim is not None:
        raw = torch.randn(rows, policy.projection_dim, generator=generator)
        embeddings = ViewRows.split(F.normalize(raw, dim=1), 2, views)
    return policy.pseudo_label(
        ViewRows.split(logits, 2, views), embeddings, labels, index
    )


@settings(deadline=None, max_examples=40)
@given(
    name=st.sampled_from(sorted(POLICIES)),
    classes=st.integers(2, 6),
    size=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_weights_stay_in_unit_interval_step_after_step(name, classes, size, seed):
    policy = _policy(name, classes, samples=4 * size)
    for step, logits in enumerate(_batches(seed, classes, 4, size)):
        index = torch.arange(step * size, (step + 1) * size)
        pseudo = _step(policy, logits, index, seed + step)
        assert bool(((pseudo.weights >= 0) & (pseudo.weights <= 1)).all())
        assert pseudo.targets.shape[0] == size


@settings(deadline=None, max_examples=40)
@given(
    classes=st.integers(2, 6),
    size=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_comatch_targets_and_graph_rows_are_distributions(classes, size, seed):
    policy = _policy('comatch', classes, samples=4 * size)
    for step, logits in enumerate(_batches(seed, classes, 4, size)):
        pseudo = _step(policy, logits, torch.arange(size), seed + step)
        ones = torch.ones(size)
        torch.testing.assert_close(pseudo.probs.sum(dim=1), ones)
        torch.testing.assert_close(pseudo.graph.sum(dim=1), ones)
        assert bool((pseudo.graph.diagonal() > 0).all())
        # Linked both ways: the graph's edges are symmetric.
        assert torch.equal(pseudo.graph > 0, (pseudo.graph > 0).T)
        assert torch.equal(pseudo.targets, pseudo.probs.argmax(dim=1))
    assert policy.bank.full  # 4 steps of at least 3 rows fill 8 slots


def _monotone_within_classes(probs: Tensor, weights: Tensor) -> bool:
    """Among samples predicted as the same class, more confidence never weighs less."""
    confidence, predicted = probs.max(dim=1)
    for cls in predicted.unique():
        order = confidence[predicted == cls].argsort()
        if not bool((weights[predicted == cls][order].diff() >= 0).all()):
            return False
    return True


@settings(deadline=None, max_examples=40)
@given(
    name=st.sampled_from(['fixmatch', 'freematch', 'flexmatch', 'softmatch']),
    classes=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
def test_more_confident_samples_never_weigh_less(name, classes, seed):
    options = {'uniform_alignment': False} if name == 'softmatch' else None
    policy = build_policy(name, classes, False, 48, options).train()
    for step, logits in enumerate(_batches(seed, classes, 4, 12)):
        probs = policy.probabilities(logits)
        pseudo = policy(probs, torch.arange(step * 12, (step + 1) * 12))
        assert _monotone_within_classes(probs, pseudo.weights)


@settings(deadline=None, max_examples=40)
@given(classes=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_class_thresholds_follow_what_each_class_has_learnt(classes, seed):
    freematch = FreeMatch(classes).train()
    flexmatch = FlexMatch(classes, num_samples=48).train()
    for step, logits in enumerate(_batches(seed, classes, 4, 12)):
        index = torch.arange(step * 12, (step + 1) * 12)
        freematch(freematch.probabilities(logits), index)
        flexmatch(flexmatch.probabilities(logits), index)
        # FreeMatch: the global threshold scaled by each class's share, at most 1x.
        local = freematch.class_thresholds
        assert bool((local <= freematch.global_threshold + 1e-6).all())
        order = freematch.class_probs.argsort()
        assert bool((local[order].diff() >= -1e-6).all())
        # FlexMatch: thresholds rise with learning status, up to the fixed one.
        thresholds = flexmatch.class_thresholds
        assert bool((thresholds <= flexmatch.threshold).all())
        order = flexmatch.learning_status.argsort()
        assert bool((thresholds[order].diff() >= 0).all())
