"""Mixed precision (``amp``): bfloat16 autocast runs on the CPU too, so its path is tested
here; float16 with gradient scaling needs CUDA (tests/test_cuda.py)."""

from __future__ import annotations

import json

import pytest
import torch

from capas.api.fit import fit
from capas.errors import TrainingError
from capas.models import build
from capas.objectives import Loss
from capas.train.config import TrainConfig
from capas.train.steppers import AutogradStepper


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, :4].sum(1) > 0).long() + (x[:, 4] > 0.5).long()  # 3 classes
    return x[:192], y[:192], x[192:], y[192:]


OPTIONS = dict(epochs=12, batch_size=16, seed=0, quiet=True, device="cpu", grad_norms=False)


def test_bf16_autocast_trains_on_the_cpu_like_float32(tmp_path):
    plain = fit(build("8-32-3", seed=0), _data(), **OPTIONS)
    mixed = fit(build("8-32-3", seed=0), _data(), amp="bf16", out=tmp_path / "run", **OPTIONS)
    assert mixed.engine == "autograd"  # the explicit engine declines mixed precision
    losses = mixed.history.column("train_loss")
    assert losses[-1] < 0.6 * losses[0]
    # bfloat16 keeps 8 bits of mantissa: the curves agree to a few parts in a hundred
    for a, b in zip(plain.history.column("val_loss"), mixed.history.column("val_loss")):
        assert a == pytest.approx(b, rel=0.05)
    assert mixed.history[-1]["val_accuracy"] >= plain.history[-1]["val_accuracy"] - 0.05
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["amp"] == "bf16" and config["task"]["amp"] == "bf16"
    assert all(p.dtype == torch.float32 for p in mixed.model.parameters())  # master weights stay float32


def test_a_bf16_step_computes_in_bfloat16_and_keeps_the_loss_in_float32():
    model = build("8-16-3", seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    stepper = AutogradStepper(model, optimizer, Loss("cross_entropy"), amp="bf16")
    x, y, _, _ = _data()
    with torch.no_grad():  # the float32 loss before the update
        expected = torch.nn.functional.cross_entropy(model.training_module(True)(x[:16]), y[:16])
    loss = stepper.step(x[:16], y[:16])
    assert stepper.last_output.dtype == torch.bfloat16  # (16, 3) logits from autocast matmuls
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert stepper.scaler is None  # bfloat16 has float32's range: nothing to scale
    assert float(loss) == pytest.approx(float(expected), rel=0.02)


def test_amp_options_and_their_refusals():
    assert TrainConfig(amp=True).amp == "fp16" and TrainConfig(amp=False).amp is None  # earlier config.json files
    assert TrainConfig(amp="bfloat16").amp == "bf16"
    with pytest.raises(TrainingError, match="amp: Input should be 'bf16' or 'fp16'"):
        TrainConfig.from_options(amp="int8")
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="amp=fp16 needs a CUDA device, but training runs on cpu"):
            fit(build("8-4-3", seed=0), _data(), amp="fp16", **OPTIONS)
    with pytest.raises(TrainingError, match="engine='backprop' cannot train this run: mixed precision"):
        fit(build("8-4-3", seed=0), _data(), amp="bf16", engine="backprop", **OPTIONS)
