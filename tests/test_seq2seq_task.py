"""Seq2SeqTask on the core's loop: learning, the teacher-forcing schedule, exact resume."""

import json
from pathlib import Path

import pytest
import torch

import capas
from capas.api.recipes import resume_recipe, run_recipe
from capas.api.seq2seq import load_seq2seq_recipe, read_raw_recipe
from capas.cli import main
from capas.data.pairs import load_pairs
from capas.errors import DataError, RunDirError, TrainingError, TrainingInterrupted
from capas.models.seq2seq import Seq2Seq
from capas.tasks import Seq2SeqTask, for_model
from capas.tasks.seq2seq_metrics import bleu_scores
from capas.train import rundir
from capas.train.callbacks import Callback
from capas.train.config import TrainConfig


@pytest.fixture(scope="module")
def reverse_data():
    return load_pairs("reverse", n=1000, min_len=1, max_len=4, alphabet=4, seed=0)


def small_model(data, **options):
    torch.manual_seed(0)
    return Seq2Seq.for_data(data, embed=8, hidden=32, **options)


def test_learns_to_reverse_short_strings(reverse_data, tmp_path, capsys):
    run = tmp_path / "run"
    result = capas.fit(small_model(reverse_data), reverse_data, epochs=5, batch_size=32, lr=0.01, quiet=True, out=run)
    assert result.test_metrics["test_exact_match"] >= 0.9, result.test_metrics
    assert result.test_metrics["test_token_accuracy"] >= 0.95
    assert result.test_metrics["test_bleu"] > 0.8
    history = result.history
    assert {"train_token_accuracy", "val_exact_match", "val_decoded_token_accuracy"} <= set(history[-1])
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 3
    (text, weights), *_ = result.model.translate(["abcd"])
    assert text == "dcba" and weights.shape == (5, 5)
    # the command line, from the run directory
    main(["translate", str(run), "abcd", "--attention", str(tmp_path / "map.png"), "--beam", "2", "--json"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == {"outputs": ["dcba"], "plots": [str(tmp_path / "map.png")]}
    assert (tmp_path / "map.png").stat().st_size > 1000
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", str(run), "abce"])
    assert exit_info.value.code == 2 and "never seen in training: 'e'" in capsys.readouterr().err
    # capas evaluate reloads the run's pairs (capas.data.load knows them) and recomputes its test metrics
    main(["evaluate", str(run), "--json"])
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("test_loss", "test_exact_match", "test_token_accuracy", "test_bleu"):
        assert evaluated[key] == pytest.approx(result.test_metrics[key], abs=1e-6), key
    with pytest.raises(SystemExit):
        main(["evaluate", str(run), "--data", "digits"])
    assert "not made of this encoder-decoder's symbol pairs" in capsys.readouterr().err


def test_a_text_pairs_file_reports_word_bleu_in_metrics_evaluate_and_the_report(tmp_path, capsys):
    words = ["red", "blue", "green", "cat", "dog", "bird", "big", "small"]
    rng = torch.Generator().manual_seed(1)
    lines = []
    for _ in range(300):
        sentence = [words[int(i)] for i in torch.randint(len(words), (3,), generator=rng)]
        lines.append(" ".join(sentence) + "\t" + " ".join(reversed(sentence)))
    path = tmp_path / "text.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = load_pairs("pairs-file", path=str(path), seed=0)
    model = small_model(data)
    result = capas.fit(model, data, epochs=1, batch_size=32, quiet=True, out=tmp_path / "run")
    metrics = result.test_metrics
    decoded = [model.target_vocab.decode(row) for row in model.greedy(data.x_test)[0].tolist()]
    expected = bleu_scores(decoded, [target for _, target in data.pairs["test"]])
    assert metrics["test_word_bleu"] == pytest.approx(expected["word_bleu"], abs=1e-9)
    assert metrics["test_bleu"] == pytest.approx(expected["bleu"], abs=1e-9)
    main(["evaluate", str(tmp_path / "run")])
    assert f"word BLEU: {metrics['test_word_bleu']:.4f}" in capsys.readouterr().out
    recipe = tmp_path / "text.toml"
    recipe.write_text(
        f'kind = "seq2seq"\nname = "text"\n[data]\nname = "pairs-file"\noptions = {{ path = "{path}" }}\n'
        '[[models]]\nlabel = "gru"\noptions = { embed = 8, hidden = 16 }\n[train]\nepochs = 1\nbatch_size = 32\n',
        encoding="utf-8",
    )
    report = run_recipe(recipe, out=tmp_path / "recipe", quiet=True).report.read_text()
    assert "test word BLEU" in report


def test_capas_train_builds_an_encoder_decoder_for_pair_data(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", "reverse", "--data-option", "n=600", "--data-option", "max_len=4"]
    argv += ["--data-option", "alphabet=4", "--epochs", "4", "--lr", "0.01", "--quiet", "--json", "--out", str(run)]
    main([*argv, "--model", '{hidden = 24, embed = 8, attention = "dot", style = "luong"}'])
    printed = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(printed[-1])
    assert printed[0] == (
        f"test exact match: {summary['test_exact_match']:.4f}  token accuracy: "
        f"{summary['test_token_accuracy']:.4f}  (test loss {summary['test_loss']:.4f})"
    )
    assert summary["test_exact_match"] > 0.5
    model = rundir.load_model(run)
    assert isinstance(model, Seq2Seq) and model.options["hidden"] == 24 and model.options["attention"] == "dot"
    errors = [
        (["--model", "64-10"], "reverse holds sequence pairs, which an encoder-decoder reads: give --model as"),
        (["--model", "{hiden = 3}"], "no encoder-decoder option hiden; the options are embed, hidden"),
        (["--model", "{hidden = }"], "is not a TOML inline table"),
        (
            ["--act", "tanh", "--loss", "mse"],
            "--act, --loss: a GAN or an encoder-decoder takes its settings in the --model table",
        ),
    ]
    for extra, message in errors:
        with pytest.raises(SystemExit) as exit_info:
            main([*argv[:-2], "--out", str(tmp_path / "refused"), *extra])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
        assert not (tmp_path / "refused").exists()
    with pytest.raises(TrainingError, match="holds sequence pairs .* which a layer spec like '64-10' cannot read"):
        capas.fit("64-10", load_pairs("reverse", n=50), epochs=1, quiet=True)


def test_a_run_whose_teacher_forcing_spans_its_length_is_not_lengthened(tmp_path):
    data = load_pairs("reverse", n=60, max_len=3, alphabet=3)
    for schedule, allowed in (
        ({"teacher_forcing_final": 0.5}, False),
        ({"teacher_forcing_final": 0.5, "teacher_forcing_epochs": 2}, True),
    ):
        run = tmp_path / str(allowed)
        capas.fit(
            small_model(data), data, epochs=2, quiet=True, out=run, task_options={"teacher_forcing": 1.0, **schedule}
        )
        if allowed:  # the ratio reached 0.5 at epoch 2 and stays: epochs 3 and 4 are well defined
            assert len(capas.fit(small_model(data), data, resume=run, epochs=4, quiet=True).history) == 4
        else:
            with pytest.raises(TrainingError, match="teacher-forcing ratio goes from 1.0 to 0.5 over its 2 epochs"):
                capas.fit(small_model(data), data, resume=run, epochs=4, quiet=True)


def test_the_dataset_registry_loads_pairs_by_name():
    data = capas.data.load("dates", n=200, seed=3, validation=0.1)
    again = load_pairs("dates", n=200, seed=3, validation=0.1)
    assert data.pairs == again.pairs and torch.equal(data.x_train, again.x_train)
    with pytest.raises(DataError, match="sequence pairs: addition, reverse, sort, dates"):
        capas.data.load("datez")
    with pytest.raises(DataError, match="cannot be standardized"):
        capas.data.load("dates", standardize=True)


def test_seq2seq_recipe_writes_its_report(tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        'kind = "seq2seq"\nname = "tiny"\n[data]\nname = "sort"\n'
        "options = { n = 200, max_len = 4, alphabet = 3 }\n"
        '[[models]]\nlabel = "attention"\noptions = { hidden = 8, attention = "general", style = "luong" }\n'
        '[[models]]\nlabel = "plain"\noptions = { hidden = 8, attention = "none" }\n'
        '[train]\nepochs = 1\n[plots]\nexample = "cab"\n[targets]\ntest_exact_match = 1.01\n',
        encoding="utf-8",
    )
    result = run_recipe(recipe, out=tmp_path / "out", quiet=True)
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert [v.label for v in result.variants] == ["attention", "plain"]
    assert "| attention | hidden=8, attention=general, style=luong |" in report
    assert report.count("(target >= 1.01): NOT reached") == 2
    assert (tmp_path / "out" / "attention" / "plots" / "attention.png").is_file()
    metrics = rundir.load_run(tmp_path / "out" / "plain").metrics
    assert f"{metrics['test_exact_match']:.4f}" in report
    again = run_recipe(recipe, out=tmp_path / "again", quiet=True)  # same seed: same numbers
    assert [v.test_metrics for v in again.variants] == [v.test_metrics for v in result.variants]
    with pytest.raises(RunDirError, match="already finished"):
        resume_recipe(tmp_path / "out")


def test_teacher_forcing_schedule_and_options(reverse_data):
    task = for_model(
        small_model(reverse_data), teacher_forcing=1.0, teacher_forcing_final=0.5, teacher_forcing_epochs=3
    )
    assert isinstance(task, Seq2SeqTask)
    task.ctx = type("Ctx", (), {"config": capas.train.TrainConfig(epochs=10)})()
    assert [task.teacher_forcing_ratio(e) for e in (1, 2, 3, 9)] == [1.0, 0.75, 0.5, 0.5]
    with pytest.raises(TrainingError, match="probability"):
        Seq2SeqTask(small_model(reverse_data), teacher_forcing=1.5)
    with pytest.raises(TrainingError, match="loss do"):
        capas.fit(small_model(reverse_data), reverse_data, epochs=1, loss="mse", quiet=True)
    with pytest.raises(TrainingError, match="int64 token ids"):
        capas.fit(small_model(reverse_data), (torch.zeros(8, 3), torch.zeros(8, dtype=torch.long)), quiet=True)
    with pytest.raises(TrainingError, match="sparsity"):  # no hidden-activity term in its loss: refused, not ignored
        capas.fit(small_model(reverse_data), reverse_data, epochs=1, sparsity="l1", sparsity_weight=0.1, quiet=True)


class StopBefore(Callback):
    """Ctrl-C at the start of epoch ``epoch`` (after the previous epoch's checkpoint)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_resume_gives_the_uninterrupted_weights(reverse_data, tmp_path):
    options = {"batch_size": 64, "seed": 3, "epochs": 3, "quiet": True}
    tasks = {"teacher_forcing": 1.0, "teacher_forcing_final": 0.3}  # coins drawn from the run's generator
    whole = capas.fit(small_model(reverse_data), reverse_data, task_options=tasks, **options)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="epoch 2"):
        capas.fit(
            small_model(reverse_data), reverse_data, out=run, callbacks=[StopBefore(3)], task_options=tasks, **options
        )
    assert rundir.read_json(run / "state.json")["epoch"] == 2
    resumed = capas.fit(rundir.load_model(run), reverse_data, resume=run, quiet=True)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert resumed.test_metrics == whole.test_metrics


def test_capas_train_resume_reloads_the_pairs_and_finishes_the_run(reverse_data, tmp_path, capsys):
    """From the command line: the run's config names its pairs, capas.data.load rebuilds them."""
    options = {"batch_size": 64, "seed": 3, "epochs": 3, "quiet": True}
    whole = capas.fit(small_model(reverse_data), reverse_data, **options)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        capas.fit(small_model(reverse_data), reverse_data, out=run, callbacks=[StopBefore(3)], **options)
    main(["train", "--resume", str(run), "--json"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["epochs"] == 3
    assert printed["test_exact_match"] == pytest.approx(whole.test_metrics["test_exact_match"], abs=1e-9)
    assert printed["test_token_accuracy"] == pytest.approx(whole.test_metrics["test_token_accuracy"], abs=1e-9)


@pytest.mark.parametrize("name", ["dates", "addition", "reverse"])
def test_shipped_seq2seq_recipes_validate_and_build(name):
    path = Path(__file__).resolve().parent.parent / "recipes" / f"{name}.toml"
    raw = read_raw_recipe(path)
    recipe = load_seq2seq_recipe(raw, path)
    assert recipe.name == name and recipe.description
    assert bool(recipe.targets) == (name != "reverse")  # reverse reports, it has no target
    small = load_pairs(recipe.data.name, seed=0, validation=recipe.data.validation, **{**recipe.data.options, "n": 60})
    for entry in recipe.models:
        Seq2Seq.for_data(small, **entry.options)  # every model's options are accepted
    TrainConfig.from_options(**recipe.train)
