"""Named random generators: every random draw of a run comes from one of these.

A run owns one :class:`Generators`: ``shuffle`` (sample order), ``dropout`` (dropout
masks), ``noise`` (input noise, denoising corruption), ``sample`` (Gibbs sampling; a
generator's noise), ``augment`` (data augmentation, issue 14), and ``split`` / ``init`` for
tasks that split or initialise within a run (``capas.data.load`` and ``capas.build`` draw
theirs from the seed before a run exists). Keeping them apart means that turning on one feature (say, input noise)
does not change the draws of another (the sample order), and that a checkpoint can save
and restore each exactly. capas never reads or reseeds torch's global generator, so a
caller's ``torch.manual_seed`` stream is untouched by a fit.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

#: each name's seed is ``seed + offset``: shuffle and noise keep the offsets capas has
#: always used (0 and 1), so seeded runs of earlier versions draw the same orders.
OFFSETS = {"shuffle": 0, "noise": 1, "split": 2, "init": 3, "dropout": 4, "augment": 5, "sample": 6}
PREFIX = "rng/"


class Generators:
    """One seeded ``torch.Generator`` per name in :data:`OFFSETS`.

    Args:
        seed: the run's seed (``>= 0``).
        device: where the generators draw; ``shuffle`` and ``split`` always draw on the
            CPU (``randperm`` orders are then the same on every device).
    """

    NAMES = tuple(OFFSETS)

    def __init__(self, seed: int, device: torch.device | str = "cpu") -> None:
        self.seed = int(seed)
        self.device = torch.device(device)
        self._generators: dict[str, torch.Generator] = {}
        for name, offset in OFFSETS.items():
            where = "cpu" if name in ("shuffle", "split") else self.device
            self._generators[name] = torch.Generator(device=where).manual_seed(self.seed + offset)

    def __getitem__(self, name: str) -> torch.Generator:
        try:
            return self._generators[name]
        except KeyError:
            raise KeyError(f"no generator named {name!r}; the names are {', '.join(self.NAMES)}") from None

    def __getattr__(self, name: str) -> torch.Generator:
        generators = self.__dict__.get("_generators", {})
        if name in generators:
            return generators[name]
        raise AttributeError(name)

    def __iter__(self) -> Iterator[tuple[str, torch.Generator]]:
        return iter(self._generators.items())

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """``{"rng/<name>": uint8 state}`` for a checkpoint (safetensors, no pickle)."""
        return {PREFIX + name: generator.get_state() for name, generator in self._generators.items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore the states :meth:`state_tensors` saved (names absent there are left alone)."""
        for name, generator in self._generators.items():
            state = tensors.get(PREFIX + name)
            if state is not None:
                generator.set_state(state.to(torch.uint8).cpu())

    def __repr__(self) -> str:
        return f"Generators(seed={self.seed}, device={str(self.device)!r})"
