"""The loop around the steps: early stopping, convergence, NaN stop, reproducibility,
history files, engines, devices, and resuming a killed run to the same weights."""

import csv
import json
import math

import pytest
import torch
from torch import nn

from capas.api.fit import fit
from capas.errors import CapasError, RunDirError, TrainingError
from capas.models import build
from capas.train import Callback, EarlyStopping, load_run


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def _model(dropout=0.0):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, 2))


class Snapshots(Callback):
    """Keeps a copy of the weights after every epoch."""

    def __init__(self):
        self.weights = {}

    def on_epoch_end(self, trainer, epoch, record):
        self.weights[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_early_stopping_restores_the_best_epochs_weights():
    x, y = _data()
    # validation labels are the training labels flipped: fitting the training set makes
    # the validation loss rise, so the best epoch is early and patience ends the run
    model, snaps = _model(), Snapshots()
    result = fit(
        model,
        (x, y, x, 1 - y),
        optimizer="sgd",
        lr=0.5,
        epochs=30,
        batch_size=8,
        patience=3,
        quiet=True,
        callbacks=[snaps],
        engine="autograd",
    )
    val = result.history.column("val_loss")
    best = min(range(len(val)), key=val.__getitem__) + 1
    assert len(result.history) == best + 3 < 30
    assert "early stopping" in result.stop_reason
    for key, value in model.state_dict().items():
        assert torch.equal(value, snaps.weights[best][key])


def test_early_stopping_min_delta_and_mode():
    stopper = EarlyStopping("val_accuracy", patience=1, min_delta=0.1)
    assert stopper.mode == "max"
    assert stopper._improved(0.5) and (setattr(stopper, "best", 0.5) or True)
    assert not stopper._improved(0.55) and stopper._improved(0.65)


def test_target_loss_ends_training():
    x, y = _data()
    result = fit(
        _model(), (x, y), optimizer="adam", lr=0.05, epochs=200, batch_size="full", target_loss=0.3, quiet=True
    )
    losses = result.history.column("train_loss")
    assert losses[-1] <= 0.3 < min(losses[:-1]) and len(losses) < 200
    assert result.stop_reason.startswith("converged")


def test_min_improvement_ends_a_stalled_run():
    x, y = _data()
    result = fit(_model(), (x, y), lr=1e-6, epochs=50, batch_size="full", min_improvement=1e-3, quiet=True)
    assert len(result.history) == 2 and "improved by" in result.stop_reason


def test_regression_data_trains_with_mse_and_reports_errors():
    from capas.data import Dataset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 2, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0]]) + 0.5  # (N, 1)
    data = Dataset("line", x[:80], y[:80], x[80:100], y[80:100], x[100:], y[100:], (2,), None, [], "regression")
    result = fit(nn.Linear(2, 1), data, lr=0.1, epochs=60, batch_size=16, quiet=True)
    metrics = result.test_metrics
    assert "train_accuracy" not in result.history[-1] and result.history[-1]["val_loss"] < 1e-3
    assert metrics["test_rmse"] == pytest.approx(metrics["test_mse"] ** 0.5) and metrics["test_rmse"] < 0.03


def test_a_nan_loss_stops_with_epoch_step_and_hint():
    x, y = _data()
    x[13, 2] = float("nan")  # batch mode: the one step of epoch 1 sees it
    with pytest.raises(TrainingError, match=r"became nan at epoch 1, step 1; .*Lower the learning rate"):
        fit(_model(), (x, y), epochs=3, batch_size="full", quiet=True)
    x, y = _data()
    with pytest.raises(TrainingError, match=r"at epoch \d+, step \d+; .*clip gradients"):
        fit(_model(), (x * 1e30, y), lr=1e30, epochs=5, batch_size=8, quiet=True)


def test_same_seed_gives_identical_histories_and_other_seed_does_not():
    x, y = _data()
    options = dict(optimizer="momentum", lr=0.1, epochs=4, batch_size=8, input_noise=0.1, quiet=True, seed=5)
    histories = [fit(_model(0.3), (x, y, x[:10], y[:10]), **options).history for _ in range(2)]
    assert histories[0].without_timing() == histories[1].without_timing()
    other = fit(_model(0.3), (x, y, x[:10], y[:10]), **{**options, "seed": 6}).history
    assert other.without_timing() != histories[0].without_timing()


def test_history_records_and_files(tmp_path):
    x, y = _data()
    torch.manual_seed(0)
    network = build("4-6-2", act="tanh", loss="cross_entropy")
    result = fit(
        network,
        (x, y, x[:10], y[:10]),
        lr=0.2,
        epochs=3,
        batch_size=10,
        out=tmp_path / "run",
        quiet=True,
        engine="autograd",
    )
    record = result.history[-1]
    assert {"epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr", "seconds"} <= set(record)
    assert {"grad_norm/dense1", "grad_norm/dense2"} <= set(record) and record["grad_norm/dense1"] > 0
    run = load_run(tmp_path / "run")
    assert run.history.without_timing() == result.history.without_timing()
    rows = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert [float(r["train_loss"]) for r in rows] == result.history.column("train_loss")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["format"] == "capas-run" and config["train"]["lr"] == 0.2 and config["engine"] == "autograd"
    rebuilt = run.build_model()
    assert torch.equal(rebuilt.predict(x), network.predict(x))


def test_engine_choice_and_refusal():
    x, y = _data()
    torch.manual_seed(0)
    mlp = build("4-6-2", act="tanh", loss="cross_entropy")
    assert fit(mlp, (x, y), epochs=1, quiet=True).engine == "fast"  # the compiled kernel (capas.fast)
    assert fit(mlp, (x, y), epochs=1, quiet=True, class_weights="balanced").engine == "autograd"
    with pytest.raises(TrainingError, match="engine='backprop' cannot train this run: .*use engine='autograd'"):
        fit(_model(), (x, y), epochs=1, quiet=True, engine="backprop")


def test_both_engines_give_the_same_history():
    x, y = _data()
    histories = []
    for engine in ("backprop", "autograd"):
        torch.manual_seed(0)
        mlp = build("4-5-2", act="tanh", loss="mse").double()
        result = fit(
            mlp,
            (x.double(), y),
            loss="mse_half_sum",
            target_encoding="tanh",
            engine=engine,
            epochs=3,
            lr=0.2,
            batch_size=8,
            l2=0.01,
            quiet=True,
        )
        assert result.engine == engine
        histories.append(result.history.without_timing())
    for a, b in zip(*histories):
        assert a == pytest.approx(b, rel=1e-9)


def test_unavailable_device_and_amp_without_cuda_are_clear_errors():
    x, y = _data()
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="CUDA is not available"):
            fit(_model(), (x, y), epochs=1, quiet=True, device="cuda")
        with pytest.raises(TrainingError, match="amp=fp16 needs a CUDA device"):
            fit(_model(), (x, y), epochs=1, quiet=True, amp=True, device="cpu")
    with pytest.raises(TrainingError, match="unknown device 'tpu9'"):
        fit(_model(), (x, y), epochs=1, quiet=True, device="tpu9")
    with pytest.raises(TrainingError, match="has 3 output unit.*2 classes; end the model spec with -2"):
        fit(build("4-3", loss="cross_entropy"), (x, y), epochs=1, quiet=True)
    with pytest.raises(TrainingError, match="invalid training option.*lr"):
        fit(_model(), (x, y), lr=-1, quiet=True)


class KillAt(Callback):
    """Simulates a killed process: dies when epoch ``epoch`` begins (after the previous checkpoint)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("optimizer, killed_in", [("momentum", 4), ("adam", 1)])
def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path, optimizer, killed_in):
    x, y = _data(60)
    options = dict(
        optimizer=optimizer,
        lr=0.05,
        epochs=6,
        batch_size=7,
        input_noise=0.05,
        scheduler="step",
        scheduler_options={"step_size": 2, "gamma": 0.5},
        patience=10,
        quiet=True,
        seed=4,
    )
    data = (x, y, x[:15], y[:15])
    full = _model(0.2)
    fit(full, data, out=tmp_path / "full", **options)

    killed = _model(0.2)
    with pytest.raises(KeyboardInterrupt):
        fit(killed, data, out=tmp_path / "killed", callbacks=[KillAt(killed_in)], **options)
    assert len(load_run(tmp_path / "killed").history) == killed_in - 1
    torch.manual_seed(123)  # a fresh process: the global RNG is elsewhere
    resumed = _model(0.2)
    result = fit(resumed, data, resume=tmp_path / "killed", quiet=True)
    assert len(result.history) == 6
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    full_history = load_run(tmp_path / "full").history.without_timing()
    assert result.history.without_timing() == full_history
    with pytest.raises(RunDirError, match="already finished"):
        fit(_model(0.2), data, resume=tmp_path / "killed", quiet=True)
    with pytest.raises(TrainingError, match="do not pass lr, optimizer"):
        fit(_model(0.2), data, resume=tmp_path / "killed", lr=1.0, optimizer="nadam")  # adam is the default


def test_checkpoints_every_k_epochs_and_leave_no_temporary_files(tmp_path):
    x, y = _data()
    saved = []

    class Watch(Callback):
        def on_epoch_begin(self, trainer, epoch):
            if (tmp_path / "run" / "state.json").is_file():
                saved.append(json.loads((tmp_path / "run" / "state.json").read_text())["epoch"])

    fit(_model(), (x, y), epochs=5, checkpoint_every=2, quiet=True, out=tmp_path / "run", callbacks=[Watch()])
    assert saved == [0, 0, 2, 2, 4]  # the checkpoint seen when epochs 1..5 begin (0: written at the start)
    assert json.loads((tmp_path / "run" / "state.json").read_text())["epoch"] == 5  # the last epoch always
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]


def test_plateau_schedule_lowers_the_lr_when_the_monitored_loss_stalls():
    x, y = _data()
    result = fit(
        _model(),
        (x, y, x, 1 - y),
        lr=0.5,
        epochs=8,
        batch_size=8,
        scheduler="plateau",
        scheduler_options={"patience": 0, "factor": 0.1},
        quiet=True,
    )
    lrs = result.history.column("lr")
    assert lrs[0] == 0.5 and min(lrs) < 0.5 and sorted(lrs, reverse=True) == lrs


def test_fit_builds_a_spec_and_loads_a_dataset_by_name_with_the_seed():
    first = fit("2-4-2", "xor", epochs=2, lr=0.3, quiet=True, seed=7)
    second = fit("2-4-2", "xor", epochs=2, lr=0.3, quiet=True, seed=7)
    assert first.model.layer_names() == ["dense1", "dense2"]
    assert first.history.without_timing() == second.history.without_timing()
    assert 0 <= first.test_metrics["test_accuracy"] <= 1


def test_numpy_float64_arrays_train_a_float32_model():
    x, y = _data()
    result = fit(_model(), (x.double().numpy(), y.numpy()), epochs=2, quiet=True, seed=1)
    same = fit(_model(), (x, y), epochs=2, quiet=True, seed=1)
    assert result.history.without_timing() == same.history.without_timing()


def test_a_column_of_labels_trains_like_a_vector_of_them():
    x, y = _data()
    column = fit(_model(), (x, y[:, None]), epochs=2, quiet=True, seed=1)
    vector = fit(_model(), (x, y), epochs=2, quiet=True, seed=1)
    assert column.history.without_timing() == vector.history.without_timing()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda x, y: (x, y - 1), "class labels must be 0..K-1, got -1"),
        (lambda x, y: (x, torch.stack([y, 1 - y], 1)), r"class labels of shape \(N,\), got \(40, 2\)"),
        (lambda x, y: (x[:0], y[:0]), "the training data has no samples"),
    ],
)
def test_unusable_targets_and_empty_data_are_clear_errors(make, message):
    with pytest.raises(TrainingError, match=message):
        fit(_model(), make(*_data()), epochs=1, quiet=True)


def test_load_run_refuses_what_is_not_a_capas_run(tmp_path):
    with pytest.raises(RunDirError, match="no run directory"):
        load_run(tmp_path / "missing")
    with pytest.raises(RunDirError, match="missing config.json, model.json, weights.safetensors"):
        load_run(tmp_path)
    x, y = _data()
    fit(_model(), (x, y), epochs=1, quiet=True, out=tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    (tmp_path / "run" / "config.json").write_text(json.dumps({**config, "format": "other"}))
    with pytest.raises(RunDirError, match="not a capas run config"):
        load_run(tmp_path / "run")
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    import pickle

    (tmp_path / "run" / "weights.safetensors").write_bytes(pickle.dumps({"w": [1, 2]}))
    with pytest.raises(RunDirError, match="not a valid safetensors file"):
        load_run(tmp_path / "run").weights()


@pytest.mark.parametrize("scheduler", ["exponential", "one_cycle"])
def test_a_resumed_backprop_run_follows_the_restored_lr_schedule(tmp_path, scheduler):
    # optimizer.load_state_dict replaces the param-group dicts the scheduler then updates;
    # the explicit engine must read the lr from those, not from the dicts it was built with
    x, y = _data(60)
    options = dict(lr=0.2, epochs=5, batch_size=7, scheduler=scheduler, engine="backprop", quiet=True, seed=2)
    data = (x, y, x[:15], y[:15])
    full = build("4-8-2", seed=0)
    fit(full, data, out=tmp_path / "full", **options)
    with pytest.raises(KeyboardInterrupt):
        fit(build("4-8-2", seed=0), data, out=tmp_path / "killed", callbacks=[KillAt(3)], **options)
    resumed = build("4-8-2", seed=0)
    result = fit(resumed, data, resume=tmp_path / "killed", quiet=True)
    assert result.engine == "backprop"
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_resuming_for_more_epochs_is_recorded_and_refused_for_one_cycle(tmp_path):
    x, y = _data(60)
    options = dict(lr=0.2, epochs=4, batch_size=7, quiet=True)
    for name, scheduler in (("plain", None), ("cycle", "one_cycle")):
        with pytest.raises(KeyboardInterrupt):
            fit(
                build("4-8-2", seed=0),
                (x, y),
                out=tmp_path / name,
                scheduler=scheduler,
                callbacks=[KillAt(3)],
                **options,
            )
    with pytest.raises(TrainingError, match="one_cycle LR schedule spans its 4 epochs"):
        fit(build("4-8-2", seed=0), (x, y), resume=tmp_path / "cycle", epochs=6, quiet=True)
    # killed again after the longer resume: the next resume still trains to 6 epochs
    with pytest.raises(KeyboardInterrupt):
        fit(build("4-8-2", seed=0), (x, y), resume=tmp_path / "plain", epochs=6, quiet=True, callbacks=[KillAt(5)])
    assert load_run(tmp_path / "plain").config["train"]["epochs"] == 6
    result = fit(build("4-8-2", seed=0), (x, y), resume=tmp_path / "plain", quiet=True)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("targets", ["labels", "regression"])
def test_cross_entropy_on_a_single_output_unit_is_refused(targets):
    # a softmax over one unit is 1 whatever the weights: the loss would be 0 (regression)
    # or index past the only logit (two classes)
    x, y = _data()
    y = y if targets == "labels" else x[:, :1]
    with pytest.raises(TrainingError, match="cross_entropy needs one output unit per class"):
        fit(build("4-3-1", loss="cross_entropy"), (x, y), epochs=1, quiet=True)
    result = fit(
        build("4-3-1", loss="binary_cross_entropy" if targets == "labels" else "mse"), (x, y), epochs=1, quiet=True
    )
    assert math.isfinite(result.history[-1]["train_loss"])


def test_a_model_that_does_not_fit_the_inputs_fails_before_writing_a_run(tmp_path):
    x, y = _data()
    with pytest.raises(CapasError, match="expects inputs of shape"):
        fit(build("3-4-2"), (x, y), epochs=1, quiet=True, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


class CountingSteps(Callback):
    """Counts per-batch calls; ``needs`` says whether it insists on them."""

    def __init__(self, needs: bool) -> None:
        self.needs_batches = needs
        self.calls = 0

    def on_batch_end(self, trainer, step, loss) -> None:
        self.calls += 1


def test_a_progress_bar_does_not_force_the_per_step_loop(monkeypatch):
    from capas.tasks.supervised import SupervisedTask
    from capas.train.callbacks import ProgressBar

    whole_epochs = []
    original = SupervisedTask.run_epoch

    def counting(self, epoch, batches, after_step):
        result = original(self, epoch, batches, after_step)
        whole_epochs.append(result is not None)
        return result

    monkeypatch.setattr(SupervisedTask, "run_epoch", counting)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    nicety, insists = CountingSteps(needs=False), CountingSteps(needs=True)
    fit(build("4-8-2", seed=0), (x, y), epochs=2, batch_size=8, quiet=True, callbacks=[nicety])
    assert whole_epochs == [True, True] and nicety.calls == 0  # the engine ran each epoch whole
    whole_epochs.clear()
    fit(build("4-8-2", seed=0), (x, y), epochs=2, batch_size=8, quiet=True, callbacks=[insists])
    assert whole_epochs == [] and insists.calls == 2 * 8  # a callback that needs batches gets every step
    assert ProgressBar.needs_batches is False
