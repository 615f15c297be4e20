"""The registry, and what every policy guarantees."""

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from geossl.errors import GeosslInputError
from geossl.ssl.policies import (
    POLICIES,
    SUPERVISED,
    PseudoLabelPolicy,
    PseudoLabels,
    ViewRows,
    WeakViewPolicy,
    algorithm_names,
    build_policy,
)
from geossl.ssl.policies.base import SHORT_BUDGET
from geossl.ssl.policies.comatch import CoMatch
from geossl.ssl.policies.flexmatch import FlexMatch
from geossl.ssl.policies.freematch import FreeMatch
from tests.ssl.policies.common import batches, pseudo_label_step


def test_every_policy_is_registered_under_its_name():
    assert POLICIES
    assert all(cls.name == name for name, cls in POLICIES.items())
    assert all(cls.display_name for cls in POLICIES.values())
    assert algorithm_names(multilabel=False)[0] == SUPERVISED
    assert set(algorithm_names(False)[1:]) | set(algorithm_names(True)[1:]) == set(
        POLICIES
    )
    assert 'multilabel' in algorithm_names(True)
    assert 'fixmatch' in algorithm_names(False)


def test_a_new_policy_registers_itself_and_builds():
    class Toy(WeakViewPolicy, name='toy', display_name='Toy'):
        def forward(self, probs, index):
            return PseudoLabels(probs.argmax(dim=1), torch.ones(len(probs)))

    try:
        assert POLICIES['toy'] is Toy
        assert 'toy' in algorithm_names(multilabel=False)
        assert isinstance(build_policy('toy', 3, multilabel=False), Toy)
    finally:
        POLICIES.pop('toy')


def test_options_are_checked_against_the_policy_signature():
    # An int where a float is asked for is a float; a bool is no number.
    assert build_policy('fixmatch', 3, False, options={'threshold': 1}).threshold == 1
    with pytest.raises(
        GeosslInputError,
        match=r"algorithm_options.threshold: is 'high'; fixmatch takes",
    ):
        build_policy('fixmatch', 3, False, options={'threshold': 'high'})
    with pytest.raises(GeosslInputError, match='warmup_steps: is True; dash takes a'):
        build_policy('dash', 3, False, options={'warmup_steps': True})
    with pytest.raises(GeosslInputError, match='warmup: is 0; flexmatch takes a bool'):
        build_policy('flexmatch', 3, False, 8, options={'warmup': 0})
    with pytest.raises(
        GeosslInputError,
        match=r"fixmatch has no option 'thresold' \(its options: threshold\)",
    ):
        build_policy('fixmatch', 3, False, options={'thresold': 0.9})


def test_a_taken_name_is_refused():
    with pytest.raises(TypeError, match="'fixmatch' names FixMatch already"):

        class Again(WeakViewPolicy, name='fixmatch'):
            pass

    assert POLICIES['fixmatch'].__name__ == 'FixMatch'


@pytest.mark.parametrize('name', sorted(POLICIES))
@pytest.mark.parametrize('steps', [1, 100, 1_000, 19_999, 20_000, 1_000_000])
def test_budget_options_build_a_valid_policy(name, steps):
    policy_class = POLICIES[name]
    options = policy_class.budget_options(steps)
    policy = build_policy(name, 3, policy_class.multilabel, 8, options)
    assert all(getattr(policy, key) == value for key, value in options.items())


def test_short_budgets_scale_moving_averages_and_warm_ups():
    assert POLICIES['freematch'].budget_options(1_000) == {'ema': 0.98}
    assert POLICIES['softmatch'].budget_options(1_000) == {'ema': 0.98}
    assert POLICIES['flexmatch'].budget_options(1_000) == {'warmup': False}
    assert POLICIES['dash'].budget_options(1_000) == {
        'warmup_steps': 50,
        'decay_every': 50,
    }
    # From SHORT_BUDGET steps on, the published defaults; Dash always scales.
    assert POLICIES['freematch'].budget_options(SHORT_BUDGET) == {}
    assert POLICIES['flexmatch'].budget_options(SHORT_BUDGET) == {}
    assert POLICIES['dash'].budget_options(204_800)['decay_every'] == 10_240
    assert POLICIES['fixmatch'].budget_options(1_000) == {}


@pytest.mark.parametrize('name', sorted(POLICIES))
def test_evaluation_mode_leaves_state_alone(name):
    policy = _policy(name, 3, samples=8)
    generator = torch.Generator().manual_seed(0)
    for step in range(3):  # state to keep: past warm-ups, a full CoMatch bank
        logits = torch.randn(4, 3, generator=generator) * 4
        pseudo_label_step(policy, logits, torch.arange(4) + 4 * (step % 2), step)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    logits = torch.randn(4, 3, generator=generator) * 4
    pseudo_label_step(policy.eval(), logits, torch.arange(4), 3)
    for key, value in policy.state_dict().items():
        assert torch.equal(value, before[key]), key


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
    comatch = CoMatch(2, alpha=0.5, temperature=1.0, projection_dim=2, bank_size=8)
    comatch.train()
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


#: Options under which a few small steps reach every branch of a policy, beyond
#: its options for a budget of four steps.
SMALL = {'comatch': {'bank_size': 8, 'alignment_steps': 2, 'projection_dim': 3}}


def _policy(name: str, classes: int, samples: int) -> PseudoLabelPolicy:
    policy_class = POLICIES[name]
    options = policy_class.budget_options(4) | SMALL.get(name, {})
    return build_policy(
        name, classes, policy_class.multilabel, samples, options
    ).train()


@settings(deadline=None, max_examples=40)
@given(
    name=st.sampled_from(sorted(POLICIES)),
    classes=st.integers(2, 6),
    size=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_weights_stay_in_unit_interval_step_after_step(name, classes, size, seed):
    policy = _policy(name, classes, samples=4 * size)
    for step, logits in enumerate(batches(seed, classes, 4, size)):
        index = torch.arange(step * size, (step + 1) * size)
        pseudo = pseudo_label_step(policy, logits, index, seed + step)
        assert bool(((pseudo.weights >= 0) & (pseudo.weights <= 1)).all())
        assert pseudo.targets.shape[0] == size


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
    for step, logits in enumerate(batches(seed, classes, 4, 12)):
        probs = policy.probabilities(logits)
        pseudo = policy(probs, torch.arange(step * 12, (step + 1) * 12))
        assert _monotone_within_classes(probs, pseudo.weights)
