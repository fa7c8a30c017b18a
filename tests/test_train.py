"""fmlib.train: learning, determinism, the store (load, resume after a kill), the EMA, the field adapter, errors."""

from __future__ import annotations

import shutil

import pytest
import torch

import fmlib.train
from fmlib.closed_form import ClosedFormField
from fmlib.losses import LOSSES, CFMSampler, register_loss
from fmlib.ode import integrate, time_grid
from fmlib.train import EMA, TrainConfig, WarmupEMA, checkpoint_dir, checkpoint_key, train_or_load

DATA = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0], [0.0, 2.0]])
TINY = TrainConfig(net_options={"width": 16, "depth": 2, "time_features": 4}, steps=30, batch_size=8, seed=3)


def _train(config: TrainConfig, store, **kwargs) -> fmlib.train.TrainedModel:
    return train_or_load(config, DATA, store=store, device="cpu", progress=False, **kwargs)


def _weights(model: fmlib.train.TrainedModel) -> list[torch.Tensor]:
    return [*model.net.state_dict().values(), *model.ema.state_dict().values()]


def _zero_velocity(x: torch.Tensor, t: float) -> torch.Tensor:
    return torch.zeros_like(x)


def _field_error(field, data: torch.Tensor, t: float) -> float:
    """E ||v(x_t, t) - u*(x_t, t)||^2 over fresh x_t at time t."""
    generator = torch.Generator().manual_seed(0)
    x1 = data[torch.randint(data.shape[0], (2000,), generator=generator)]
    x_t = (1 - t) * torch.randn(x1.shape, generator=generator) + t * x1
    velocity = getattr(field, "velocity", field)
    return float((velocity(x_t, t) - ClosedFormField(data).velocity(x_t, t)).square().sum(dim=1).mean())


@pytest.mark.parametrize("loss", [("cfm", {}), ("efm", {"pool_size": 4})])
def test_training_approaches_the_closed_form(tmp_path, loss) -> None:
    config = TrainConfig(
        net_options={"width": 32, "depth": 2, "time_features": 8},
        loss=loss[0],
        loss_options=loss[1],
        steps=400,
        batch_size=64,
        lr=1e-2,
        ema_decay=0.9,
    )
    model = _train(config, tmp_path)
    for t in (0.2, 0.5):  # measured: 0.05-0.09 against 0.69-1.1 for the zero field
        assert _field_error(model.field(), DATA, t) < 0.3 * _field_error(_zero_velocity, DATA, t)
    assert model.losses[-1] < model.losses[0]
    assert model.loss_steps.tolist() == [100, 200, 300, 400] and not model.loaded


def test_mutation_negated_target_fails_the_learning_check(tmp_path) -> None:
    class Negated(CFMSampler):
        name = "_negated_cfm"

        def target(self, x0, x1, x_t, t, generator):
            return x0 - x1

    register_loss(Negated)
    try:
        config = TrainConfig(
            net_options={"width": 32, "depth": 2, "time_features": 8},
            loss="_negated_cfm",
            steps=400,
            batch_size=64,
            lr=1e-2,
            ema_decay=0.9,
        )
        model = _train(config, tmp_path)
    finally:
        del LOSSES["_negated_cfm"]
    assert _field_error(model.field(), DATA, 0.5) > 0.3 * _field_error(_zero_velocity, DATA, 0.5)


def test_two_runs_are_bit_for_bit_identical(tmp_path) -> None:
    first, second = _train(TINY, tmp_path / "a"), _train(TINY, tmp_path / "b")
    assert all(torch.equal(a, b) for a, b in zip(_weights(first), _weights(second), strict=True))
    assert torch.equal(first.losses, second.losses)
    other = _train(TrainConfig(**{**TINY.__dict__, "seed": 4}), tmp_path / "c")
    assert not torch.equal(_weights(first)[0], _weights(other)[0])


def test_second_call_loads_without_training(tmp_path, monkeypatch) -> None:
    first = _train(TINY, tmp_path)
    monkeypatch.setattr(fmlib.train, "_loop", lambda *args: pytest.fail("trained again"))
    second = _train(TINY, tmp_path, checkpoint_every=7, log_every=3)  # bookkeeping is not in the key
    assert second.loaded and second.key == first.key
    assert all(torch.equal(a, b) for a, b in zip(_weights(first), _weights(second), strict=True))
    assert torch.equal(first.losses, second.losses)
    assert not second.ema.training and not second.net.training
    assert sorted(p.name for p in first.path.iterdir()) == ["config.json", "model.pt"]


def test_default_store_follows_fmlib_results(results_store) -> None:
    assert fmlib.train.default_store() == results_store / "checkpoints"
    model = train_or_load(TINY, DATA, device="cpu", progress=False)
    assert model.path == results_store / "checkpoints" / model.key == checkpoint_dir(TINY, DATA)


def test_resume_after_a_kill_is_bit_for_bit(tmp_path, monkeypatch) -> None:
    uninterrupted = _train(TINY, tmp_path / "whole", checkpoint_every=10, log_every=4)
    calls = {"n": 0}
    original = CFMSampler.target

    def killed_at_step_25(self, *args):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(CFMSampler, "target", killed_at_step_25)
    with pytest.raises(KeyboardInterrupt):
        _train(TINY, tmp_path / "killed", checkpoint_every=10, log_every=4)
    directory = tmp_path / "killed" / uninterrupted.key
    assert (directory / "partial.pt").exists() and not (directory / "model.pt").exists()
    monkeypatch.setattr(CFMSampler, "target", original)
    resumed = _train(TINY, tmp_path / "killed", checkpoint_every=10, log_every=4)
    assert resumed.resumed_from == 20 and not resumed.loaded
    assert all(torch.equal(a, b) for a, b in zip(_weights(uninterrupted), _weights(resumed), strict=True))
    assert torch.equal(uninterrupted.losses, resumed.losses)
    assert not (directory / "partial.pt").exists()


def test_key_hashes_every_training_parameter_and_the_data() -> None:
    base = checkpoint_key(TINY, DATA)
    changes = {
        "net_options": {"width": 17, "depth": 2, "time_features": 4},
        "loss": "efm",
        "n": 4,
        "steps": 31,
        "batch_size": 9,
        "lr": 2e-3,
        "grad_clip": None,
        "ema_decay": 0.99,
        "ema_warmup": False,
        "seed": 4,
    }
    keys = {checkpoint_key(TrainConfig(**{**TINY.__dict__, name: value}), DATA) for name, value in changes.items()}
    assert base not in keys and len(keys) == len(changes)
    assert checkpoint_key(TINY, DATA.flip(0)) != base
    assert checkpoint_key(TINY, DATA.double()) == base  # the float32 values are what is trained on
    assert checkpoint_key(TINY, torch.cat([DATA, DATA])) != base
    first_five = TrainConfig(**{**TINY.__dict__, "n": 5})
    assert checkpoint_key(first_five, torch.cat([DATA, DATA])) == checkpoint_key(first_five, DATA)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"loss": "cfn"}, "did you mean 'cfm'"),
        ({"loss": "efm", "loss_options": {"pool_size": 0}}, "pool_size"),
        ({"n": 6}, "n=6 is larger than the data"),
        ({"net": "mlp2"}, "net="),
        ({"net_options": {"widht": 3}}, "widht"),
        ({"steps": 0}, "steps"),
        ({"lr": 0.0}, "lr"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_input_fails_before_training(tmp_path, monkeypatch, change, match) -> None:
    monkeypatch.setattr(fmlib.train, "_loop", lambda *args: pytest.fail("training started"))
    with pytest.raises(ValueError, match=match):
        _train(TrainConfig(**{**TINY.__dict__, **change}), tmp_path)


def test_checkpoint_from_other_parameters_is_refused(tmp_path, monkeypatch) -> None:
    trained = _train(TINY, tmp_path)
    other = TrainConfig(**{**TINY.__dict__, "seed": 9})
    shutil.copytree(trained.path, tmp_path / checkpoint_key(other, DATA))
    monkeypatch.setattr(fmlib.train, "_loop", lambda *args: pytest.fail("training started"))
    with pytest.raises(ValueError, match=r"other parameters \(differing: seed\)"):
        _train(other, tmp_path)


def test_warmup_ema_matches_its_formula() -> None:
    net = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(net, decay=0.999, warmup=True)
    expected = None
    for k, value in enumerate([2.0, 4.0, 8.0]):
        net.weight.data.fill_(value)
        ema.update_parameters(net)
        beta = min(0.999, (1 + k) / (10 + k))  # update k >= 1 after the copy (update 0)
        expected = value if expected is None else beta * expected + (1 - beta) * value
    assert float(ema.module.weight.detach()) == pytest.approx(expected, rel=1e-6)
    assert int(ema.n_averaged) == 3
    assert WarmupEMA(0.999, warmup=False).beta() == 0.999


def test_mutation_ema_without_warmup_stays_near_the_start() -> None:
    """A 0.999 average over 20 steps without warm-up keeps ~98% of the first weights; with warm-up it follows."""
    net = torch.nn.Linear(1, 1, bias=False)
    followed = {}
    for warmup in (True, False):
        ema = EMA(net, decay=0.999, warmup=warmup)
        for step in range(21):
            net.weight.data.fill_(float(step))
            ema.update_parameters(net)
        followed[warmup] = float(ema.module.weight.detach())
    assert followed[True] > 10 and followed[False] < 1


def test_net_field_adapter_integrates_to_one(tmp_path) -> None:
    model = _train(TINY, tmp_path)
    field = model.field(batch_size=3)
    x = torch.randn(7, 2, dtype=torch.float64)
    v = field.velocity(x, 0.25)
    assert v.dtype == torch.float64 and v.shape == (7, 2)
    torch.testing.assert_close(field.posterior_mean(x, 0.25), x + 0.75 * v)
    with torch.no_grad():
        direct = model.ema(x.float(), torch.full((7,), 0.25)).double()
    torch.testing.assert_close(v, direct)
    result = integrate(field, x, time_grid(4), method="heun")  # the last step is the denoiser form
    assert result.x.shape == (7, 2) and bool(torch.isfinite(result.x).all())
    raw = model.field(ema=False).velocity(x, 0.25)
    assert not torch.equal(raw, v)
