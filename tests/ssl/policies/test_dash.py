"""Dash."""

import pytest
import torch

from geossl.ssl.policies.dash import Dash
from tests.ssl.policies.common import INDEX, PROBS


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
