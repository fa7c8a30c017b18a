"""The closed-form teacher loss regresses on u*(x_t, t) itself, written without cancellation near t = 1."""

from __future__ import annotations

import torch

from fmlib.closed_form import ClosedFormField
from fmlib.losses import LOSSES, make_loss
from fmlib.teacher import ClosedFormTeacher
from tests.problems import brute_force_velocity


def test_target_is_the_closed_form_at_the_drawn_point():
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(20, 5, generator=generator, dtype=torch.float64)
    loss = make_loss("closed-form-teacher", data)
    assert LOSSES["closed-form-teacher"] is ClosedFormTeacher
    batch = loss.sample(data[torch.randint(20, (64,), generator=generator)], generator)
    assert torch.allclose(batch.target, brute_force_velocity(batch.x_t, batch.t, data), atol=1e-10)
    # mutation: the conditional target x1 - x0 (CFM) is not the teacher's
    cfm = make_loss("cfm", data).sample(data, torch.Generator().manual_seed(1))
    assert not torch.allclose(cfm.target, ClosedFormField(data).velocity(cfm.x_t, cfm.t), atol=1e-3)


def test_target_stays_accurate_near_t_one_in_float32():
    data = torch.randn(8, 3, generator=torch.Generator().manual_seed(2))
    loss = ClosedFormTeacher(data)
    x0, x1 = torch.randn(8, 3, generator=torch.Generator().manual_seed(3)), data
    t = torch.full((8,), 1 - 1e-6)
    x_t = torch.lerp(x0, x1, t.unsqueeze(1))
    target = loss.target(x0, x1, x_t, t, None)
    assert torch.allclose(target, x1 - x0, atol=1e-3)  # the weights have concentrated on x1
