import math

import pytest
import torch

from geossl.ssl.distillation import context_distillation, logit_distillation


def test_context_distillation_moves_only_the_student():
    student = torch.tensor([[1.0, 2.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 4.0]], requires_grad=True)
    loss = context_distillation(student, teacher)
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert student.grad.tolist() == [[1.0, -2.0]]
    assert teacher.grad is None


def test_logit_distillation_hand_values():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])
    # T = 1: KL([0.75, 0.25] || [0.5, 0.5]) = 0.75 ln 1.5 + 0.25 ln 0.5.
    assert logit_distillation(student, teacher, 1.0, False).item() == pytest.approx(
        0.75 * math.log(1.5) + 0.25 * math.log(0.5), abs=1e-6
    )
    # T = 2: teacher softened to [0.634, 0.366]; times T^2 = 4.
    p = math.sqrt(3) / (math.sqrt(3) + 1)
    expected = 4 * (p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p)))
    assert logit_distillation(student, teacher, 2.0, False).item() == pytest.approx(
        expected, abs=1e-6
    )


def test_multilabel_distillation_is_a_bernoulli_kl_per_class():
    teacher = torch.tensor([[2.0, -1.0, 0.5]])
    assert logit_distillation(teacher, teacher, 1.0, True).item() == pytest.approx(
        0.0, abs=1e-6
    )
    student = torch.zeros(1, 3)
    t = teacher.sigmoid()
    expected = (t * (2 * t).log() + (1 - t) * (2 * (1 - t)).log()).mean()
    assert logit_distillation(student, teacher, 1.0, True).item() == pytest.approx(
        expected.item(), abs=1e-6
    )
