"""Character-level generation from a trained text run (one-to-many sampling).

A net trained on the ``text`` dataset (``Tx<V> lstm128 d<V>``: at every step a softmax over
the V characters of the vocabulary) continues a prime: the prime's characters are read one
by one, then each new character is drawn from softmax(z_T / temperature) of the last step
and fed back as the next input. Temperature 1 samples the model's own distribution; lower
values sharpen it towards the most likely character (0 is refused: use a small value such
as 0.1 for near-greedy text), higher ones flatten it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from capas.errors import CapasError, RunDirError

#: characters of context the net reads for each new one (it was trained on short windows)
MAX_CONTEXT = 256


def generate_text(run_dir: str | Path, prime: str, length: int = 200, temperature: float = 1.0, seed: int = 0) -> str:
    """``prime`` followed by ``length`` characters sampled from the text run in ``run_dir``."""
    from capas.data.sequences import text_vocabulary
    from capas.models.modes import eval_mode
    from capas.train.rundir import load_run

    if length < 0:
        raise CapasError(f"--length must be >= 0, got {length}")
    if not temperature > 0:
        raise CapasError(f"--temperature must be > 0, got {temperature}; use e.g. 0.1 for near-greedy text")
    run = load_run(run_dir)
    record = run.config.get("data") or {}
    path = (record.get("options") or {}).get("path")
    if record.get("name") != "text" or not path:
        raise RunDirError(
            f"{run_dir} was not trained on the 'text' dataset (it used {record.get('name')!r}); "
            "generate from a run of capas train --data text --data-option path=FILE"
        )
    vocabulary = text_vocabulary(path)
    index = {c: i for i, c in enumerate(vocabulary)}
    unknown = sorted({c for c in prime} - set(index))
    if not prime or unknown:
        what = "is empty" if not prime else f"has characters not in the training text: {''.join(unknown)!r}"
        raise CapasError(f"--prime {what}; use characters of {path}")
    model = run.build_model()
    generator = torch.Generator().manual_seed(seed)
    ids = [index[c] for c in prime]
    width = len(vocabulary)
    with torch.no_grad(), eval_mode(model):
        for _ in range(length):
            context = torch.tensor(ids[-MAX_CONTEXT:])
            x = torch.nn.functional.one_hot(context, width).to(next(model.parameters()).dtype)[None]  # (1, T, V)
            logits = model.logits(x)[0, -1]  # (V,): the last step's z
            probabilities = torch.softmax(logits.double() / temperature, dim=0)
            ids.append(int(torch.multinomial(probabilities, 1, generator=generator)))
    return "".join(vocabulary[i] for i in ids)
