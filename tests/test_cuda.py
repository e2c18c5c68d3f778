"""The CUDA paths: every task on ``device="cuda"``, the explicit BackProp engine on a GPU,
mixed precision (bfloat16, and float16 with gradient scaling, reported in the history),
pinned DataLoader batches, exact resume with the CUDA generators, and NCCL process groups.

They skip where there is no GPU; ``benchmarks/gpu_check.sh`` runs them on a machine with
one (the NCCL test with two ranks wants two GPUs and skips on one).
"""

from __future__ import annotations

import pytest
import torch

from capas.api.fit import fit
from capas.models import build
from capas.models.autoencoder import Autoencoder
from capas.models.rbm import RBM
from capas.train import Callback, distributed
from capas.train.rundir import load_model

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device here: these tests run on a GPU machine (benchmarks/gpu_check.sh)",
)

OPTIONS = dict(epochs=6, batch_size=32, seed=0, quiet=True, device="cuda")


def _data(n=512, features=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = (x[:, :5].sum(1) > 0).long() + (x[:, 5] > 0.5).long()  # 3 classes
    cut = n * 3 // 4
    return x[:cut], y[:cut], x[cut:], y[cut:]


def _images(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = (x[:, 0, :14].mean((1, 2)) > x[:, 0, 14:].mean((1, 2))).long()
    return x[:192], y[:192], x[192:], y[192:]


def test_the_supervised_task_trains_on_the_gpu(tmp_path):
    result = fit(build("20-64-3", seed=0), _data(), engine="autograd", out=tmp_path / "run", **OPTIONS)
    assert next(result.model.parameters()).device.type == "cuda"
    assert result.history[-1]["val_accuracy"] > 0.75
    reloaded = load_model(tmp_path / "run")  # weights written from the GPU, read on the CPU
    x_val = _data()[2]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x_val), result.model(x_val.cuda()).cpu(), rtol=1e-5, atol=1e-6)


def test_a_lenet_style_network_trains_on_the_gpu():
    spec = "1x28x28 c5x5x6:p2 mp2 c5x5x16 mp2 d120 d84 d2"
    result = fit(build(spec, seed=0), _images(), **OPTIONS)
    losses = result.history.column("train_loss")
    assert losses[-1] < losses[0]


def test_the_explicit_engine_on_the_gpu_matches_autograd():
    data = _data()
    options = {**OPTIONS, "optimizer": "sgd", "lr": 0.1, "grad_norms": False}
    explicit = fit(build("20-32-3", seed=0).double(), data, engine="backprop", **options)
    autograd = fit(build("20-32-3", seed=0).double(), data, engine="autograd", **options)
    assert explicit.engine == "backprop"
    for a, b in zip(explicit.model.parameters(), autograd.model.parameters()):
        assert a.device.type == "cuda"
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)


def test_pretraining_tasks_train_on_the_gpu():
    x = torch.rand(256, 20, generator=torch.Generator().manual_seed(0))
    autoencoder = fit(Autoencoder.from_spec("20-8", act="sigmoid"), x, epochs=5, quiet=True, device="cuda")
    errors = autoencoder.history.column("train_loss")
    assert errors[-1] < errors[0]
    rbm = fit(RBM(20, 8, seed=0), (x > 0.5).float(), epochs=5, quiet=True, device="cuda")
    assert next(rbm.model.parameters()).device.type == "cuda"


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_like_float32_and_is_reported(amp, tmp_path):
    plain = fit(build("20-64-3", seed=0), _data(), engine="autograd", **OPTIONS)
    mixed = fit(build("20-64-3", seed=0), _data(), amp=amp, out=tmp_path / amp, **OPTIONS)
    assert mixed.history[-1]["val_accuracy"] >= plain.history[-1]["val_accuracy"] - 0.05
    for a, b in zip(plain.history.column("val_loss"), mixed.history.column("val_loss")):
        assert a == pytest.approx(b, rel=0.05)
    record = mixed.history[-1]
    if amp == "fp16":  # the gradient scaler's state is in the history
        assert record["amp_scale"] > 0 and record["amp_skipped_steps"] >= 0
    else:
        assert "amp_scale" not in record


def test_an_fp16_run_resumes_to_the_same_weights(tmp_path):
    whole = fit(build("20-16-drop0.2-3", seed=0), _data(), amp="fp16", out=tmp_path / "whole", **OPTIONS)

    class StopAfter(Callback):
        name = "stop_after"

        def on_epoch_end(self, trainer, epoch, record):
            if epoch == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(
            build("20-16-drop0.2-3", seed=0),
            _data(),
            amp="fp16",
            out=tmp_path / "cut",
            callbacks=[StopAfter()],
            **OPTIONS,
        )
    resumed = fit(build("20-16-drop0.2-3", seed=0), _data(), resume=tmp_path / "cut", quiet=True)
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_dataloader_batches_are_pinned_for_the_gpu():
    from torch.utils.data import DataLoader, TensorDataset

    from capas.data.adapters import LoaderAdapter

    x, y, _, _ = _data()
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    adapter = LoaderAdapter(loader, torch.device("cuda"), torch.float32)
    assert adapter.loader.pin_memory
    batch = next(adapter.epoch(1, None))
    assert batch.x.device.type == "cuda" and batch.x.shape == (32, 20)
    result = fit(build("20-32-3", seed=0), loader, epochs=4, seed=0, quiet=True, device="cuda")
    assert result.history.column("train_loss")[-1] < result.history.column("train_loss")[0]


def _nccl_job(world: int) -> dict:
    """One NCCL rank: a fit whose parameters are then compared across ranks."""
    ranks = distributed.current()
    result = fit(build("20-32-3", seed=0), _data(), engine="auto", **OPTIONS)
    flat = torch.cat([p.detach().reshape(-1) for p in result.model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    torch.distributed.all_gather(gathered, flat)
    return {
        "backend": ranks.backend,
        "device": str(flat.device),
        "engine": result.engine,
        "equal": all(torch.equal(gathered[0], g) for g in gathered),
        "val_accuracy": result.history[-1]["val_accuracy"],
    }


def test_one_nccl_rank_trains_through_ddp():
    record = distributed.launch(_nccl_job, 1, (1,), backend="nccl")
    assert record["backend"] == "nccl" and record["device"].startswith("cuda")
    assert record["engine"] == "autograd" and record["val_accuracy"] > 0.75


@pytest.mark.skipif(
    torch.cuda.device_count() < 2, reason=f"two NCCL ranks need two GPUs, this machine has {torch.cuda.device_count()}"
)
def test_two_nccl_ranks_keep_identical_parameters():
    record = distributed.launch(_nccl_job, 2, (2,), backend="nccl")
    assert record["equal"] and record["val_accuracy"] > 0.7
