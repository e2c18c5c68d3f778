"""The training core of issue 10: named generators, batches and adapters, the Task loop,
the one training forward (DDP), and the loop's own per-step cost counted in operations."""

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils._python_dispatch import TorchDispatchMode

import capas
from capas.data.adapters import InMemoryAdapter
from capas.data.batch import Batch
from capas.rng import Generators


def _data(n=60, features=4, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, y.clamp(max=classes - 1)


# ---- generators ---------------------------------------------------------------------------
def test_generators_are_seeded_by_name_and_restore_exactly():
    a, b = Generators(7), Generators(7)
    assert torch.equal(torch.rand(3, generator=a.noise), torch.rand(3, generator=b["noise"]))
    assert not torch.equal(torch.rand(3, generator=a.shuffle), torch.rand(3, generator=a.dropout))
    saved = a.state_tensors()
    assert set(saved) == {f"rng/{name}" for name in Generators.NAMES}
    expected = torch.rand(5, generator=a.sample)
    c = Generators(99)
    c.load_state_tensors(saved)
    assert torch.equal(torch.rand(5, generator=c.sample), expected)
    with pytest.raises(KeyError, match="the names are"):
        a["missing"]


# ---- finding 7: capas.fit leaves torch's global generator alone ------------------------------
@pytest.mark.parametrize("seed", [999, 555])
def test_fit_does_not_reseed_the_global_generator(seed):
    torch.manual_seed(seed)
    expected = torch.rand(2)
    torch.manual_seed(seed)
    x, y = _data()
    capas.fit(capas.build("4-8-drop0.5-3", seed=0), (x, y), epochs=2, quiet=True)
    assert torch.equal(torch.rand(2), expected)


def test_dropout_masks_come_from_the_runs_dropout_generator():
    x, y = _data()
    histories = []
    for global_seed in (1, 2):  # whatever the caller's global state, the same run
        torch.manual_seed(global_seed)
        result = capas.fit(capas.build("4-16-drop0.5-3", seed=0), (x, y), epochs=3, seed=5, quiet=True)
        histories.append(result.history.without_timing())
    assert histories[0] == histories[1]
    other = capas.fit(capas.build("4-16-drop0.5-3", seed=0), (x, y), epochs=3, seed=6, quiet=True)
    assert other.history.without_timing() != histories[0]


# ---- batches and adapters -------------------------------------------------------------------
def test_in_memory_adapter_shuffles_once_per_epoch_with_the_generator():
    x = torch.arange(10.0).unsqueeze(1)
    y = torch.arange(10)
    adapter = InMemoryAdapter((x,), (y,), batch_size=4)
    assert adapter.steps_per_epoch == 3
    batches = list(adapter.epoch(1, torch.Generator().manual_seed(3)))
    assert [b.size for b in batches] == [4, 4, 2]
    order = torch.randperm(10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.cat([b.y for b in batches]), order)
    assert torch.equal(torch.cat([b.x[:, 0] for b in batches]).long(), order)  # inputs and targets stay paired
    subset = torch.tensor([1, 5, 7])
    chosen = torch.cat([b.y for b in adapter.epoch(2, torch.Generator().manual_seed(0), subset)])
    assert sorted(chosen.tolist()) == [1, 5, 7]
    full = list(InMemoryAdapter((x,), (y,), batch_size="full").epoch(1, None))
    assert len(full) == 1 and torch.equal(full[0].x, x)


def test_batch_names_its_parts():
    x, y, mask = torch.zeros(3, 5, 2), torch.zeros(3, dtype=torch.long), torch.ones(3, 5, dtype=torch.bool)
    batch = Batch((x,), (y,), mask)
    assert batch.x is x and batch.y is y and batch.size == 3 and batch.mask is mask
    assert Batch((x,)).y is None


# ---- finding 6: a Network inside DistributedDataParallel trains on logits -------------------------
def test_a_ddp_wrapped_network_trains_like_the_network(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        x, y = _data()
        options = dict(optimizer="sgd", lr=0.5, epochs=3, batch_size=10, quiet=True, warn_gradients=False)
        plain = capas.build("4-8-3", act="tanh", seed=1)
        wrapped = DistributedDataParallel(capas.build("4-8-3", act="tanh", seed=1))
        capas.fit(plain, (x, y), engine="autograd", **options)
        result = capas.fit(wrapped, (x, y), **options)
        assert result.engine == "autograd"  # the explicit engine would bypass the all-reduce
        for a, b in zip(plain.state_dict().values(), wrapped.module.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        with pytest.raises(capas.TrainingError, match="does not all-reduce"):
            capas.fit(DistributedDataParallel(capas.build("4-8-3", seed=1)), (x, y), engine="backprop", **options)
    finally:
        dist.destroy_process_group()


def test_the_training_module_returns_what_the_loss_needs():
    net = capas.build("4-8-3", seed=0)
    x = torch.randn(5, 4)
    torch.testing.assert_close(net.training_module(True)(x), net.logits(x))
    torch.testing.assert_close(net.training_module(False)(x), net(x))
    assert {id(p) for p in net.training_module(True).parameters()} == {id(p) for p in net.parameters()}


# ---- finding 9: the loop adds (almost) nothing to the engine's own epoch ----------------------------
class _CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def test_fits_epoch_costs_at_most_two_operations_a_step_over_the_engines_run_epoch():
    """The loop's bookkeeping (loss, accuracy, batches, gradient-norm sampling) is counted
    in tensor operations, which do not depend on the machine's load: per step, ``fit`` may
    add at most two to what ``BackpropStepper.run_epoch`` itself does."""
    from capas.backprop import BackpropStepper
    from capas.tasks import SupervisedTask
    from capas.train import TrainConfig, Trainer

    x, y = _data(n=400, features=20)
    steps = 40
    config = TrainConfig(
        optimizer="sgd",
        lr=0.1,
        batch_size=10,
        epochs=1,
        warn_gradients=False,
        grad_norms=False,
        loss="cross_entropy",
        engine="backprop",  # the torch engine (auto takes the compiled kernel: tests/test_fast_kernel.py)
    )
    trainer = Trainer(SupervisedTask(capas.build("20-16-3", act="sigmoid", seed=0)), config, quiet=True)
    trainer.setup((x, y))
    assert trainer.task.engine == "backprop"
    with _CountOps() as fit_ops:
        trainer.run_epoch(1)
    net = capas.build("20-16-3", act="sigmoid", seed=0)
    engine = BackpropStepper(net, torch.optim.SGD(net.parameters(), lr=0.1), "cross_entropy", grad_norms=False)
    with _CountOps() as engine_ops:
        engine.run_epoch(x, y, 10, torch.Generator().manual_seed(0))
    assert (fit_ops.count - engine_ops.count) / steps <= 2, (fit_ops.count, engine_ops.count)


# ---- defaults and resume ----------------------------------------------------------------------
def test_resume_refuses_any_option_even_one_equal_to_the_default(tmp_path):
    x, y = _data()
    capas.fit(capas.build("4-8-3", seed=0), (x, y), epochs=2, quiet=True, out=tmp_path / "run")
    for option in ({"optimizer": "adam"}, {"batch_size": 32}, {"seed": 0}):
        with pytest.raises(capas.TrainingError, match=f"do not pass {next(iter(option))}"):
            capas.fit(capas.build("4-8-3", seed=0), (x, y), resume=tmp_path / "run", **option)


def test_inputs_alone_are_not_supervised_data():
    x, _ = _data()
    with pytest.raises(capas.TrainingError, match="supervised training needs targets"):
        capas.fit(capas.build("4-8-3", seed=0), x, epochs=1, quiet=True)


def test_an_rbm_trains_with_the_contrastive_divergence_step_by_default():
    from capas.models.rbm import RBM

    x = (torch.rand(64, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    result = capas.fit(RBM(6, 3, seed=0), x, epochs=1, quiet=True)
    assert result.history[0]["lr"] == 0.1 == capas.defaults.LR_FOR_MODEL["rbm"]


def test_the_engines_whole_epoch_trains_exactly_as_the_per_step_loop():
    """With nothing but the engine's update in a step, the explicit engine runs the epoch
    itself; a per-batch callback forces the generic loop. Same order, same weights."""

    class EveryBatch(capas.Callback):
        def on_batch_end(self, trainer, step, loss):
            self.steps = getattr(self, "steps", 0) + 1

    x, y = _data(n=205, features=6)
    options = dict(optimizer="momentum", lr=0.2, epochs=3, batch_size=10, quiet=True, seed=3, engine="backprop")
    fast = capas.build("6-9-3", act="tanh", seed=0)
    slow = capas.build("6-9-3", act="tanh", seed=0)
    watch = EveryBatch()
    a = capas.fit(fast, (x, y), **options)
    b = capas.fit(slow, (x, y), callbacks=[watch], **options)
    assert a.engine == b.engine == "backprop" and watch.steps == 3 * 21
    for p, q in zip(fast.state_dict().values(), slow.state_dict().values()):
        assert torch.equal(p, q)
    for ra, rb in zip(a.history, b.history):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-6)
        assert ra["train_accuracy"] == pytest.approx(rb["train_accuracy"], abs=1e-6)  # float32 batch means
