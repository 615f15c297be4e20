from types import SimpleNamespace

import pytest
import torch

from geossl.tasks.schedules import cosine_schedule


def _factors(warmup: float, steps: int = 100) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    module = SimpleNamespace(trainer=SimpleNamespace(estimated_stepping_batches=steps))
    schedule = cosine_schedule(optimizer, module, 7 / 16, warmup)
    factors = []
    for _ in range(steps):
        factors.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        schedule.step()
    return factors


def test_warm_up_rises_linearly_then_follows_the_cosine():
    cosine = _factors(0.0)
    warm = _factors(0.1)
    assert cosine[0] == 1.0
    # Ten warm-up steps from 0; then the same cosine as without warm-up.
    assert warm[:11] == pytest.approx([k / 10 * cosine[k] for k in range(11)])
    assert warm[10:] == pytest.approx(cosine[10:])
    # FixMatch's 7/16 of half a turn ends near a fifth of the rate.
    assert cosine[-1] == pytest.approx(0.2, abs=0.01)
