"""How many torch threads a training run gets, chosen by its work per step.

On a shared machine a small step split over several threads waits on the slowest one: the
same 784-30-10 run took 4.7 s with one thread and 4.7-65 s with two while anything else
ran. A step's arithmetic is about ``6 x parameters x batch`` flops (forward, backward,
gradient); below ``SMALL_STEP_FLOPS`` the threads' hand-offs cost more than they save, so a
run gets one thread; above it, a matmul-bound step gets every core. The compiled kernel
(``engine="fast"``) is single-threaded: its runs get one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

#: flops per step below which a step is too small to split across threads
SMALL_STEP_FLOPS = 50_000_000
#: the batch size a full-batch run is counted as (its steps are large)
FULL_BATCH = 4096


def choose_threads(parameters: int, batch: int | str, engine: str, requested: int | None = None) -> int:
    """Torch threads for a run of ``engine`` on a network of ``parameters`` weights at
    mini-batch ``batch`` (``"full"`` counts as a large one); ``requested`` (``--threads``)
    wins when given."""
    if requested is not None:
        return requested
    cores = os.cpu_count() or 1
    samples = FULL_BATCH if batch == "full" else int(batch)
    if engine == "fast" or 6 * parameters * samples < SMALL_STEP_FLOPS:
        return 1
    return cores


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the body with ``count`` torch intra-op threads, then restore the caller's count."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
