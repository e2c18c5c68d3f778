"""The fuzz corpus of issue 20: over a thousand bad inputs given to the command line, in-process.

Specs, options, run-directory files, data files and recipes, each generated (property-based
where it helps, derandomized so CI sees the same cases) and run through ``capas.cli.main``.
For every case: no traceback (any exception other than SystemExit fails the test, and so
does "Traceback" on stderr), an exit code in {0, 1, 2, 130}, an error on exactly one line,
nothing written outside the output the command was given, and nothing ever unpickled (the
planted pickles would create a marker file when loaded).
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import shutil
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capas
from capas.cli import main

#: every case, counted by category (checked against the corpus size at the end)
CASES: Counter[str] = Counter()
#: seconds spent in the corpus's cases and fixtures (not in other test files)
SPENT = {"seconds": 0.0}
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
EXIT_CODES = {0, 1, 2, 130}


class Payload:
    """Unpickling this creates ``MARKER``: a file that must never exist."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of every file under ``root``."""
    files = {}
    for path in root.rglob("*"):
        if path.is_file():
            stat = path.stat()
            files[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return files


def run(category: str, args: list[str], sandbox: Path, allowed: tuple[str, ...] = ()) -> tuple[int, str, str]:
    """Run ``capas ARGS`` in-process in ``sandbox`` and check the corpus's promises; files may
    change only under the sandbox-relative prefixes ``allowed``."""
    CASES[category] += 1
    started = time.perf_counter()
    before = snapshot(sandbox)
    out, err = io.StringIO(), io.StringIO()
    code: object = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as exit_:
            code = 0 if exit_.code is None else exit_.code
    stderr = err.getvalue()
    assert code in EXIT_CODES, f"capas {args!r:.300}: exit code {code!r}\n{stderr[-2000:]}"
    assert "Traceback" not in stderr, f"capas {args!r:.300}:\n{stderr[-3000:]}"
    if code == 2 and not stderr.startswith("Usage:"):  # capas's one-line error (click: usage, then Error:)
        errors = [line for line in stderr.splitlines() if line.startswith(("error:", "Error:"))]
        assert len(errors) == 1, f"capas {args!r:.300}: {stderr[-2000:]}"
    after = snapshot(sandbox)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    outside = sorted(p for p in changed if not p.startswith(allowed))
    assert not outside, f"capas {args!r:.300} wrote outside its output: {outside[:5]}"
    assert not (sandbox / "PWNED").exists(), f"capas {args!r:.300} unpickled a planted payload"
    SPENT["seconds"] += time.perf_counter() - started
    return code, out.getvalue(), stderr


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    """A working directory with an empty CAPAS_DATA (no dataset is ever downloaded here)."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "data").mkdir()
    return root


@pytest.fixture(autouse=True)
def _inside(sandbox, monkeypatch):
    monkeypatch.chdir(sandbox)
    monkeypatch.setenv("CAPAS_DATA", str(sandbox / "data"))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """One tiny trained digits run (64-8-10, 1 epoch of 2: resumable), kept outside the sandbox."""
    started = time.perf_counter()
    root = tmp_path_factory.mktemp("fuzz-base")
    with contextlib.redirect_stderr(io.StringIO()):
        capas.fit("64-8-10", "digits", epochs=1, out=root / "run", quiet=True, warn_gradients=False)
    state = json.loads((root / "run" / "state.json").read_text())
    config = json.loads((root / "run" / "config.json").read_text())
    state["finished"], config["train"]["epochs"] = False, 2  # as if stopped after epoch 1 of 2
    (root / "run" / "state.json").write_text(json.dumps(state))
    (root / "run" / "config.json").write_text(json.dumps(config))
    SPENT["seconds"] += time.perf_counter() - started
    return root / "run"


# --- specs --------------------------------------------------------------------------------

SPEC_ALPHABET = st.sampled_from(
    list("0123456789x-() ,:+.dcmpsrebnlf") + ["res(", "rep", "cat(", "relu", "T", "é", "\t"]
)
specs = st.lists(SPEC_ALPHABET, min_size=0, max_size=60).map("".join)


@FUZZ
@given(spec=specs)
def test_random_specs(spec, sandbox):
    run("spec", ["summary", spec], sandbox)


@pytest.mark.parametrize("depth", [33, 100, 1000, 5000])
@pytest.mark.parametrize("block", ["res(", "rep2(", "cat(d4, "])
def test_deep_specs(block, depth, sandbox):
    spec = "64 " + block * depth + "d4" + ")" * depth + " d10"
    code, _, err = run("spec", ["summary", spec], sandbox)
    assert code == 2 and "nested more than" in err


@pytest.mark.parametrize(
    "spec",
    [
        "784-" + "-".join(["30"] * 200) + "-10",
        "x" * 5000,
        "64-" + "9" * 300 + "-10",
        "64-30-10" + " " * 400,
        "/" * 300,
        "../" * 200 + "d10",
        "64 " + "(" * 3000,
        ")" * 3000,
        "64 " + "d10:" * 500,
        "64 " + "d10+0" * 300,
        "1x" * 200 + "1 d10",
        "T" * 500,
        "64-1-" * 300 + "10",
        "64 drop0." + "9" * 500,
        "\x00spec",
        "64-\udcff-10",
    ],
)
def test_long_and_odd_specs(spec, sandbox):
    run("spec", ["summary", spec], sandbox)
    run("spec", ["summary", spec, "--json", "--loss", "mse"], sandbox)


@FUZZ
@given(spec=specs)
def test_random_specs_to_train(spec, sandbox):
    """A spec given to ``capas train``: refused before anything is written (or trained into --out)."""
    run("spec", ["train", "--model", spec, "--epochs", "1", "--quiet", "--out", "out/spec"], sandbox, ("out/spec",))
    shutil.rmtree(sandbox / "out", ignore_errors=True)


# --- options ------------------------------------------------------------------------------

KEYS = [
    "lr", "epochs", "batch_size", "momentum", "optimizer", "loss", "scheduler", "l2", "l1", "clip_norm",
    "patience", "seed", "frozen_layers", "class_weights", "resample", "target_encoding", "curriculum",
    "checkpoint_every", "eval_batch_size", "optimizer_options", "scheduler_options", "max_norm", "input_noise",
    "engine", "device", "amp", "monitor", "pacing", "nonexistent", "", "name", "../x", "lr.x",
]  # fmt: skip
BAD_VALUES = [
    "", "nan", "inf", "-inf", "-1", "0", "1e309", "10" * 40, "x", "[1,", "{", "[]", "{}", "null", "true",
    "'a'", "\"", "-0.5", "1.5", "0x10", "full", "ÿ", "a=b", "=", "1,2,3", "[[[[[[[[[[", "\\", "$(id)",
]  # fmt: skip


@pytest.mark.parametrize("key", KEYS)
def test_set_options(key, sandbox):
    for value in BAD_VALUES[:: 3 if key else 9]:
        run(
            "option",
            ["train", "--model", "64-4-10", "--epochs", "1", "--quiet", "--set", f"{key}={value}", "--out", "out/o"],
            sandbox,
            ("out/o",),
        )
        shutil.rmtree(sandbox / "out", ignore_errors=True)


FLAGS = [
    ("--epochs", ["-1", "0", "x", "1e9", "2.5"]),
    ("--lr", ["nan", "-1", "inf", "x", "0"]),
    ("--batch-size", ["0", "-3", "x", "ful", "1.5"]),
    ("--validation", ["-0.1", "1", "2", "nan", "x"]),
    ("--device", ["cuda:99", "tpu", "", "cpu:x", "mps"]),
    ("--data", ["", "nonexistent", "digits:n=3", "../x", "usps"]),
    ("--optimizer", ["", "sgdd", "SparseAdam", "Muon", "x" * 300]),
    ("--loss", ["", "nll", "cross-entropy-x", "binary_cross_entropy", "x" * 300]),
    ("--act", ["", "relu:x", "leaky_relu:-", "softmax2", "x" * 300]),
    ("--scheduler", ["", "warm", "plateau:x", "cosine:1", "x" * 300]),
    ("--freeze", ["99", "-99", "dense9", "0,,1", "x"]),
    ("--resample", ["sideways", "", "smote:x", "over,under", "1"]),
    ("--class-weights", ["heavy", "1,2", "-1,1,1,1,1,1,1,1,1,1", "nan,1", ""]),
    ("--target-encoding", ["", "ternary", "1", "onehot,tanh", "x" * 300]),
    ("--engine", ["", "jit", "backprop,autograd", "1", "x" * 300]),
    ("--resume", ["", "missing", "/", "/proc", "data"]),
    ("--init-from", ["", "missing", "/", "/proc", "data"]),
    ("--clip-norm", ["-1", "nan", "x", "0", "inf"]),
    ("--patience", ["-1", "x", "0", "1.5", "inf"]),
    ("--input-noise", ["-1", "nan", "x", "inf", "1e309"]),
]


@pytest.mark.parametrize(("flag", "values"), FLAGS, ids=[flag for flag, _ in FLAGS])
def test_train_flags(flag, values, sandbox):
    for value in values:
        args = ["train", "--model", "64-4-10", "--epochs", "1", "--quiet", "--out", "out/f", flag, value]
        run("option", args, sandbox, ("out/f",))
        shutil.rmtree(sandbox / "out", ignore_errors=True)


COMMAND_ARGS = [
    ["--version"], ["-h"], ["nonexistent"], [], ["train", "--nope"], ["evaluate"], ["predict"], ["predict", "x"],
    ["summary"], ["plot"], ["run"], ["pretrain"], ["datasets", "--json"], ["datasets", "x"],
    ["evaluate", "missing", "--data", "nonexistent"], ["plot", "missing", "--what", "everything"],
    ["summary", "64-10", "--act", "nope"], ["summary", "64-10", "--loss", "nope"],
    ["summary", "64-10", "--output-act", "nope"], ["pretrain", "--model", "64-10", "--epochs", "-1"],
    ["pretrain", "--model", "x", "--out", "out/p"], ["run", "missing.toml"], ["run", "data"],
    ["train", "--epochs"], ["train", "--set"], ["train", "--set", "noequals"],
]  # fmt: skip


@pytest.mark.parametrize("args", COMMAND_ARGS, ids=lambda a: " ".join(a)[:40] or "none")
def test_commands(args, sandbox):
    run("option", args, sandbox, ("out/",))
    shutil.rmtree(sandbox / "out", ignore_errors=True)


# --- run-directory files ------------------------------------------------------------------

WRONG = [None, "x", -1, 1.5, [], {}, [1], {"a": 1}, True, 10**30]


def key_paths(value, prefix=(), depth=3):
    """Every key path into nested dicts (and first list items), ``depth`` levels deep."""
    if depth == 0:
        return
    items = value.items() if isinstance(value, dict) else [(0, value[0])] if isinstance(value, list) and value else []
    for key, item in items:
        yield (*prefix, key)
        yield from key_paths(item, (*prefix, key), depth - 1)


def mutations(text: str):
    """(label, new text) pairs: the whole file replaced, cut or garbled, and each key path set
    to each value of WRONG."""
    data = json.loads(text)
    whole = [json.dumps(v) for v in WRONG] + ["", "{", text[: len(text) // 2], "\x00\xff", "[" * 50000, "NaN"]
    yield from ((f"whole {i}", t) for i, t in enumerate(whole))
    for path in key_paths(data):
        for value in WRONG:
            changed = json.loads(text)
            target = changed
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            yield ".".join(map(str, path)) + f"={value!r:.20}", json.dumps(changed)


def sampled(items: list, every: int) -> list:
    return items[::every]


@pytest.fixture()
def mutable_run(base_run, sandbox) -> Path:
    copy = sandbox / "run"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(base_run, copy)
    yield copy
    shutil.rmtree(copy, ignore_errors=True)


READERS = {
    "config.json": (["evaluate", "run"], ["predict", "run", "x.npy"], ["plot", "run", "--what", "curves"]),
    "model.json": (["evaluate", "run"], ["predict", "run", "x.npy"], ["summary", "run"]),
    "history.json": (["plot", "run", "--what", "curves"], ["evaluate", "run"]),
    "metrics.json": (["evaluate", "run"],),
    "state.json": (["train", "--resume", "run", "--quiet"],),
}
#: every how many mutations a file's readers run (the rest repeat the same refusal)
STRIDE = {"config.json": 4, "model.json": 1, "history.json": 2, "metrics.json": 1, "state.json": 3}


@pytest.mark.parametrize("name", list(READERS))
def test_run_dir_json_mutations(name, base_run, mutable_run, sandbox):
    np.save(sandbox / "x.npy", np.ones((2, 64)))
    original = (base_run / name).read_text()
    for index, (_, text) in enumerate(sampled(list(mutations(original)), STRIDE[name])):
        (mutable_run / name).write_text(text)
        command = READERS[name][index % len(READERS[name])]
        writes = ("run/",) if command[0] in ("train", "plot") else ()
        code, _, err = run("run-dir", command, sandbox, writes)
        if command[0] == "train" and code == 0:  # a resume that went through trained the run: restore it
            shutil.rmtree(mutable_run)
            shutil.copytree(base_run, mutable_run)
        (mutable_run / name).write_text(original)
        shutil.rmtree(mutable_run / "plots", ignore_errors=True)


def test_run_dir_tensor_files(base_run, mutable_run, sandbox):
    """Truncated, empty, garbled and planted-pickle tensor files: refused, never unpickled."""
    np.save(sandbox / "x.npy", np.ones((2, 64)))
    marker = sandbox / "PWNED"
    pickled = pickle.dumps(Payload(marker))
    state_file = next(base_run.glob("state-*.safetensors")).name
    for name in ("weights.safetensors", state_file):
        good = (base_run / name).read_bytes()
        for label, content in [
            ("empty", b""),
            ("cut8", good[:8]),
            ("half", good[: len(good) // 2]),
            ("tail", good[:-1]),
            ("header", b"\xff" * 8 + good[8:]),
            ("pickle", pickled),
            ("huge header", (10**18).to_bytes(8, "little") + good[8:]),
            ("json garbage", len(b"[1]").to_bytes(8, "little") + b"[1]"),
        ]:
            (mutable_run / name).write_bytes(content)
            for command in (["evaluate", "run"], ["predict", "run", "x.npy"], ["train", "--resume", "run", "--quiet"]):
                code, _, _ = run("run-dir", command, sandbox, ("run/",))
                if name == "weights.safetensors" or command[0] == "train":  # evaluate/predict need no checkpoint
                    assert code == 2, f"{name} {label}: {command} accepted a damaged file"
            (mutable_run / name).write_bytes(good)
    for planted in ("model.pt", "weights.pt", "state.pkl", "weights.npy"):
        (mutable_run / planted).write_bytes(pickled)
        for command in (["evaluate", "run"], ["predict", "run", "x.npy"], ["summary", "run"]):
            run("run-dir", command, sandbox, ())
    for missing in ("config.json", "model.json", "weights.safetensors", "state.json", state_file):
        shutil.move(mutable_run / missing, sandbox / "aside")
        for command in (["evaluate", "run"], ["train", "--resume", "run", "--quiet"]):
            code, _, _ = run("run-dir", command, sandbox, ("run/", "aside"))
            assert code == 2 or (command[0] == "evaluate" and missing.startswith("state")), (missing, command)
        shutil.move(sandbox / "aside", mutable_run / missing)
    assert not marker.exists()


# --- data files given to predict or loaded as datasets -------------------------------------

DTYPES = ["f4", "f8", "f2", "i1", "u1", "i8", "?", "c8", "c16", "U3", "S2", "V8", "M8[s]", "m8[s]", "O"]
shapes = st.lists(st.integers(0, 9), min_size=0, max_size=4).map(tuple)


@FUZZ
@given(shape=shapes, dtype=st.sampled_from(DTYPES), fill=st.sampled_from([0.0, 1.0, np.nan, np.inf, -1e30, 16.0]))
def test_npy_inputs_to_predict(shape, dtype, fill, base_run, sandbox):
    path = sandbox / "in.npy"
    array = np.full(shape, fill) if dtype not in ("U3", "S2", "V8", "O") else np.zeros(shape, dtype=dtype)
    with np.errstate(all="ignore"):
        array = array.astype(dtype) if dtype[0] not in "MmO" else array.astype("i8").astype(dtype)
    np.save(path, array, allow_pickle=True)
    code, out, _ = run("data", ["predict", str(base_run), str(path), "--json"], sandbox)
    if code == 0:
        assert json.loads(out)["shape"][0] >= 1


@FUZZ
@given(lines=st.lists(st.text(alphabet='0123456789.,-eE naif\t"#;x\u00e9', max_size=80), max_size=6))
def test_csv_inputs_to_predict(lines, base_run, sandbox):
    path = sandbox / "in.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    run("data", ["predict", str(base_run), str(path)], sandbox)


@FUZZ
@given(
    raw=st.binary(max_size=300),
    prefix=st.sampled_from([b"", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"PK\x03\x04"]),
)
def test_garbage_bytes_as_data_files(raw, prefix, base_run, sandbox):
    for name in ("in.npy", "in.csv"):
        (sandbox / name).write_bytes(prefix + raw)
        run("data", ["predict", str(base_run), str(sandbox / name)], sandbox)


def _header(shape, descr="<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_npz_datasets(sandbox):
    """A local dataset's .npz (optdigits from CAPAS_DATA): wrong keys, types, shapes, labels,
    sizes, pickles; each refused before training starts."""
    x = np.zeros((10, 8, 8), dtype=np.float32)
    y = np.arange(10) % 10
    marker = sandbox / "PWNED"
    variants = {
        "no keys": {},
        "wrong keys": {"a": x, "b": y},
        "text x": {"x": x.astype("U1"), "y": y},
        "complex x": {"x": x.astype(np.complex64), "y": y},
        "float y": {"x": x, "y": y.astype(float)},
        "2-D y": {"x": x, "y": y[:, None]},
        "negative y": {"x": x, "y": -y - 1},
        "big y": {"x": x, "y": y + 10},
        "short y": {"x": x, "y": y[:5]},
        "wrong shape": {"x": np.zeros((10, 7, 7)), "y": y},
        "no samples": {"x": x[:0], "y": y[:0]},
        "nan x": {"x": np.full((10, 8, 8), np.nan), "y": y},
        "object y": {"x": x, "y": np.array([Payload(marker)] * 10, dtype=object)},
    }
    target = sandbox / "data" / "optdigits.npz"
    for label, arrays in variants.items():
        np.savez(target, **arrays, allow_pickle=True) if label == "object y" else np.savez(target, **arrays)
        code, _, _ = run(
            "data", ["train", "--data", "optdigits", "--epochs", "1", "--quiet", "--out", "out/d"], sandbox
        )
        assert code == 2, label
    for label, members in {
        "terabytes": {"x.npy": _header((10**12, 8, 8)), "y.npy": _header((10**12,), "<i8")},
        "truncated": {"x.npy": _header((10, 8, 8)) + b"\0" * 8, "y.npy": _header((10,), "<i8")},
        "garbage": {"x.npy": b"\x93NUMPY\x01\x00\xff\xff", "y.npy": b""},
    }.items():
        with zipfile.ZipFile(target, "w") as archive:
            for member, content in members.items():
                archive.writestr(member, content)
        code, _, _ = run(
            "data", ["train", "--data", "optdigits", "--epochs", "1", "--quiet", "--out", "out/d"], sandbox
        )
        assert code == 2, label
    for raw in (b"", b"PK", b"not a zip at all", b"PK\x03\x04" + b"\0" * 100):
        target.write_bytes(raw)
        code, _, _ = run(
            "data", ["train", "--data", "optdigits", "--epochs", "1", "--quiet", "--out", "out/d"], sandbox
        )
        assert code == 2
    target.unlink()
    assert not marker.exists()


# --- recipes ------------------------------------------------------------------------------

RECIPE = """name = "tiny"
seed = 0

[data]
name = "xor"
validation = 0.1
options = { n = 40, noise = 0.2 }

[model]
spec = "{input}-3-{classes}"
act = "tanh"

[train]
optimizer = "sgd"
lr = 0.5
epochs = 1

[plots]
what = ["curves"]
"""
TOML_VALUES = ['""', "-1", "1.5", "[]", "{}", "true", '"../../x"', "nan", "[[1]]", '"x"', "1e400", '"/abs"']


def recipe_mutations():
    """The tiny recipe with each key's value replaced, plus broken TOML."""
    lines = RECIPE.splitlines()
    for index, line in enumerate(lines):
        if "=" in line:
            key = line.split("=")[0].strip()
            for value in TOML_VALUES:
                yield "\n".join([*lines[:index], f"{key} = {value}", *lines[index + 1 :]])
    for broken in ("[data", "name = ", "x = [1,", 'name = "a"\nname = "b"', "[model]\n[model]", "\x00", "[" * 3000):
        yield RECIPE + "\n" + broken
    yield RECIPE.replace("[train]", "[train]\nnonsense = 1")
    yield RECIPE.replace("[plots]", "[unknown]")


@pytest.mark.parametrize("stride", range(3))
def test_recipe_mutations(stride, sandbox):
    recipe = sandbox / "recipe.toml"
    for text in list(recipe_mutations())[stride::3]:
        recipe.write_text(text, encoding="utf-8", errors="surrogateescape")
        run("recipe", ["run", str(recipe), "--out", "out/r", "--quiet"], sandbox, ("out/r", "recipe.toml"))
        shutil.rmtree(sandbox / "out", ignore_errors=True)


@pytest.mark.parametrize(
    "override",
    ["name=../../x", "name=/abs", "name=", "train.epochs=-1", "train.epochs=x", "data.name=nope", "model.spec=(",
     "x.y.z=1", "=1", "train=1", "plots.what=[1]", "seed=-1", "data.options.n=1000000000000"],
)  # fmt: skip
def test_recipe_overrides(override, sandbox):
    (sandbox / "recipe.toml").write_text(RECIPE)
    run("recipe", ["run", "recipe.toml", "--out", "out/r", "--quiet", "--set", override], sandbox, ("out/r",))
    shutil.rmtree(sandbox / "out", ignore_errors=True)


def test_the_corpus_is_large_and_fast():
    """Runs last (file order): at least 1,000 bad inputs, within the corpus's time budget."""
    total = sum(CASES.values())
    assert total >= 1000, f"only {total} cases: {dict(CASES)}"
    elapsed = SPENT["seconds"]
    print(f"\nfuzz corpus: {total} cases {dict(CASES)} in {elapsed:.1f} s")
    assert elapsed < 120, f"the fuzz corpus took {elapsed:.0f} s"
