"""``History``: one dict per epoch (skorch's shape), saved as JSON and CSV.

Keys: ``epoch, train_loss, val_loss, train_accuracy, val_accuracy, lr, seconds`` and
``grad_norm/<layer>``; a key missing from an epoch (e.g. no validation split) is simply
absent there and an empty cell in the CSV.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

TIMING_KEYS = ("seconds",)


class History(list):
    """A list of per-epoch records (dicts) with column access and serialisation."""

    def column(self, key: str) -> list[Any]:
        """The values of ``key`` over the epochs (None where an epoch lacks it)."""
        return [record.get(key) for record in self]

    def keys(self) -> list[str]:
        """Every key that occurs, in first-seen order."""
        seen: dict[str, None] = {}
        for record in self:
            seen.update(dict.fromkeys(record))
        return list(seen)

    def best(self, key: str, mode: str = "min") -> dict[str, Any] | None:
        """The record with the smallest (``mode="min"``) or largest finite ``key``."""
        rows = [r for r in self if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if not rows:
            return None
        return (min if mode == "min" else max)(rows, key=lambda r: r[key])

    def without_timing(self) -> list[dict[str, Any]]:
        """Records without wall-clock fields: equal for two runs with the same seed."""
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in self]

    def to_json(self) -> list[dict[str, Any]]:
        """JSON-able list (NaN/inf become None)."""
        return [{k: _finite(v) for k, v in r.items()} for r in self]

    def to_csv(self) -> str:
        """CSV text: one header line with every key, one row per epoch."""
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.keys(), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self)
        return out.getvalue()

    @classmethod
    def from_json(cls, records: list[dict[str, Any]]) -> History:
        """Rebuild from :meth:`to_json` (None kept as None)."""
        return cls(dict(r) for r in records)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value
