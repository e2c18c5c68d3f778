"""A fork server for the tests that kill or race real processes (tests/test_rundir_*.py).

Starting a Python that imports torch and capas costs seconds; forking one that already has
costs milliseconds. :class:`ForkServer` starts ``python -c SERVER`` once (torch on one
thread, so that every run, reference or killed or resumed, computes with the same thread
count and weights compare bit for bit; the lazy imports done by one warm-up fit before any
fork) and then, per request, forks children that run a job and exit:

- ``{"kind": "fit", "out": DIR, "resume": bool}``: ``capas.fit`` of a small random problem
  (``12-16-2``, 8 epochs) into DIR, or its resume;
- ``{"kind": "pretrain", ...}``: the same for a small greedy pre-training (``12-10-6-2``, dae);
- ``{"kind": "cli", "args": [...], "cwd": DIR, "stdout": FILE, "stderr": FILE}``: ``capas.cli.main``;
- ``{"parallel": [job, job, ...]}``: the jobs in children running at the same time.

A job may be killed with SIGKILL: ``"delay": s`` by a timer, or ``"fault": NAME, "nth": n`` at
the n-th time the child reaches a point inside a checkpoint write (monkeypatching
``capas.train.rundir`` in the child: no hook in the production code):

- ``before_state_json``: the tensor file ``state-<epoch>.safetensors`` is written, ``state.json``
  (the commit) not yet;
- ``before_replace``: ``state.json``'s temporary file is complete but not yet moved into place;
- ``mid_tensor_write``: a tensor file half written (our temporary file, and a ``.tmpXXXXXX``
  file like the one safetensors writes through);
- ``before_weights``: ``state.json`` committed, ``weights.safetensors`` and the history not yet;
- ``before_history``: weights written, ``history.json/.csv`` one epoch behind.

``"fault": "sigint", "nth": n`` sends the child a SIGINT (Ctrl-C) 10 ms after its n-th
history write instead, that is early in the next epoch.

The reply per job: ``{"signal": the signal that ended it or 0, "code": its exit code}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

EPOCHS = 8
FAULTS = ("before_state_json", "before_replace", "mid_tensor_write", "before_weights", "before_history")

SERVER = r"""
import json, os, signal, sys, threading, traceback
from pathlib import Path
import torch
torch.set_num_threads(1)
import capas
from capas.api.pretrain import pretrain, resume_pretrain
from capas.cli import main
from capas.train import rundir

g = torch.Generator().manual_seed(5)
X = torch.randn(384, 12, generator=g)
Y = (X[:, 0] + X[:, 1] > 0).long()
FIT = dict(epochs=EPOCHS, batch_size=16, seed=3, quiet=True)
PRE = dict(method="dae", layer_epochs=[3, 3], batch_size=32, seed=4, quiet=True)
capas.fit("12-16-2", (X, Y), epochs=1, quiet=True)  # the lazy imports, once, before any fork
capas.fit("64-4-10", "digits", epochs=1, quiet=True)  # and those of the registry's datasets
print("ready", flush=True)


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def wrap(module, name, before):
    real = getattr(module, name)

    def patched(*args, **kwargs):
        before(*args)
        return real(*args, **kwargs)

    setattr(module, name, patched)


def arm(fault, nth, delay):
    if delay is not None:
        threading.Timer(delay, die).start()
    count = [0]

    def hit(match=True):
        if match:
            count[0] += 1
            if count[0] == nth:
                die()

    if fault == "before_state_json":
        wrap(rundir, "write_json", lambda path, data: hit(Path(path).name == "state.json"))
    elif fault == "before_replace":
        wrap(os, "replace", lambda src, dst: hit(Path(dst).name == "state.json"))
    elif fault == "before_weights":
        wrap(rundir, "save_weights", lambda *args: hit())
    elif fault == "before_history":
        wrap(rundir, "write_history", lambda *args: hit())
    elif fault == "sigint":
        def ctrl_c(*args):
            count[0] += 1
            if count[0] == nth:
                threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGINT)).start()

        wrap(rundir, "write_history", ctrl_c)
    elif fault == "mid_tensor_write":
        real = rundir.save_file

        def save_file(tensors, tmp, metadata=None):
            real(tensors, tmp, metadata=metadata)
            if Path(tmp).name.startswith(".state-"):
                count[0] += 1
                if count[0] == nth:
                    data = Path(tmp).read_bytes()
                    Path(tmp).write_bytes(data[: len(data) // 2])
                    (Path(tmp).parent / ".tmpKi11d").write_bytes(data[: len(data) // 3])
                    die()

        rundir.save_file = save_file


def job(spec):
    arm(spec.get("fault"), spec.get("nth"), spec.get("delay"))
    if spec["kind"] == "cli":
        os.chdir(spec["cwd"])
        for fd, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(os.open(spec[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
        sys.argv = ["capas", *spec["args"]]
        try:
            main(spec["args"])
        except SystemExit as end:
            sys.stdout.flush(); sys.stderr.flush()
            return end.code or 0
        sys.stdout.flush(); sys.stderr.flush()
        return 0
    out = spec["out"]
    if spec["kind"] == "fit":
        if spec["resume"]:
            capas.fit("12-16-2", (X, Y), resume=out)
        else:
            capas.fit("12-16-2", (X, Y), out=out, **FIT)
    elif spec["resume"]:
        resume_pretrain(out, data=X)
    else:
        pretrain(X, "12-10-6-2", out=out, **PRE)
    return 0


def start(spec):
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            code = job(spec)
        except BaseException:
            traceback.print_exc()
        sys.stderr.flush()
        os._exit(code)
    return pid


def result(pid):
    _, status = os.waitpid(pid, 0)
    killed = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    return {"signal": killed, "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}


for line in sys.stdin:
    spec = json.loads(line)
    if "parallel" in spec:
        pids = [start(each) for each in spec["parallel"]]
        print(json.dumps([result(pid) for pid in pids]), flush=True)
    else:
        print(json.dumps(result(start(spec))), flush=True)
"""


class ForkServer:
    """One ``python -c SERVER`` process; :meth:`run` sends it one request and waits for the reply."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER.replace("EPOCHS", str(EPOCHS))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )
        assert self.process.stdout.readline() == "ready\n", log.read_text()[-3000:]

    def run(self, **spec) -> tuple[dict | list[dict], float]:
        """The reply to ``spec`` and the seconds it took."""
        started = time.perf_counter()
        self.process.stdin.write(json.dumps(spec) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the fork server died:\n{self.log.read_text()[-3000:]}"
        return json.loads(line), time.perf_counter() - started

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
