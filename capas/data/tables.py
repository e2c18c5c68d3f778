"""CSV/TSV tables with a header: read, type the columns, encode them as numbers.

A column is *numeric* when every present value parses as a finite number, *categorical*
(one-hot encoded, its categories stored) when most values are not numbers. A column that is
mostly numbers with a stray word is a typo, not a category: it is refused naming the line
and the column. Missing values (empty, ``NA``, ``?``...) are refused the same way unless an
imputation is chosen (``mean`` or ``median`` of the training rows for numbers, the most
frequent training category for categories).

Everything fitted (categories, fill values, classes) lives in :class:`TableEncoder`, whose
JSON record a run directory keeps, so new raw rows are encoded exactly as the training rows
were. Line numbers in errors are the file's own (the header is line 1).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from capas.errors import DataError
from capas.limits import check_fits

#: field texts read as a missing value (compared lower-case, stripped)
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
#: a numeric target with at most this many distinct whole values is a class label
MAX_CLASSES_FROM_NUMBERS = 20
#: bytes a parsed field costs in memory before it becomes a float (a Python str in a list)
PARSED_FIELD_BYTES = 64
#: bytes read from the start of a file to estimate its rows
SAMPLE_BYTES = 1 << 16
IMPUTATIONS = ("mean", "median")
TASKS = ("classification", "regression")
#: a column with this name (any case) identifies rows: not a feature, carried to predictions
ID_COLUMN = "id"


@dataclass
class Table:
    """A table as text: ``rows[i][j]`` is column ``header[j]`` of the row on file line ``lines[i]``."""

    path: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]

    def column(self, name: str) -> int:
        """Index of column ``name`` (DataError listing the columns when absent)."""
        if name not in self.header:
            raise DataError(f"{self.path} has no column {name!r}; its columns are: {', '.join(self.header)}")
        return self.header.index(name)

    def values(self, j: int) -> list[str]:
        return [row[j] for row in self.rows]


def delimiter_for(path: Path, first_line: str) -> str:
    """Tab for ``.tsv``/``.tab`` files or a header with tabs and no commas; else comma
    (``;`` when the header has semicolons and no commas)."""
    if path.suffix.lower() in (".tsv", ".tab") or ("\t" in first_line and "," not in first_line):
        return "\t"
    if ";" in first_line and "," not in first_line:
        return ";"
    return ","


def check_table_size(path: Path) -> None:
    """Refuse, before reading it, a table whose parse would not fit in memory: rows are
    estimated from the file size and the mean length of the first lines, fields from the
    header, each costing :data:`PARSED_FIELD_BYTES` while parsed."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    lines = [line for line in sample.split(b"\n")[:-1] if line.strip(b"\x00\r")] or [sample]
    columns = max(1, lines[0].count(b",") + 1, lines[0].count(b"\t") + 1, lines[0].count(b";") + 1)
    mean_line = max(1.0, sum(len(line) + 1 for line in lines) / len(lines))
    rows = size / mean_line
    check_fits(
        int(rows * columns * PARSED_FIELD_BYTES),
        f"{path} ({size} bytes, about {rows:.3g} rows of {columns} columns)",
        "use a sample of the rows, or fewer columns",
        DataError,
    )


def read_table(path: str | Path) -> Table:
    """Read a CSV/TSV file with a header row; every row must have the header's width.

    Blank lines are skipped; fields are stripped. Errors (empty file, no data rows, a ragged
    row, bytes that are not UTF-8, duplicate column names) name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no file {path}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; give a table with a header row and data rows")
    check_table_size(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
            handle.seek(0)
            reader = csv.reader(handle, delimiter=delimiter_for(path, first))
            header, rows, lines = _read_rows(path, reader)
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8 CSV") from None
    except csv.Error as err:
        raise DataError(f"{path} line {reader.line_num}: {err}; is it a CSV/TSV text file?") from None
    return Table(str(path), header, rows, lines)


def _read_rows(path: Path, reader: Any) -> tuple[list[str], list[list[str]], list[int]]:
    header = next(reader, None)
    while header is not None and not any(field.strip() for field in header):
        header = next(reader, None)
    if header is None:
        raise DataError(f"{path} is empty; give a table with a header row and data rows")
    header = [name.strip() or f"column{j + 1}" for j, name in enumerate(header)]
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path} line 1: column name {name!r} appears twice; column names must be unique")
        seen.add(name)
    rows, lines = [], []
    for row in reader:
        if not any(field.strip() for field in row):
            continue
        if len(row) != len(header):
            raise DataError(
                f"{path} line {reader.line_num}: {len(row)} fields but the header has {len(header)} columns; "
                "every row needs one value per column (leave a missing value empty)"
            )
        rows.append([field.strip() for field in row])
        lines.append(reader.line_num)
    if not rows:
        raise DataError(f"{path} has a header but no data rows")
    return header, rows, lines


def is_missing(text: str) -> bool:
    return text.strip().lower() in MISSING


def parse_number(text: str) -> float | None:
    """``float(text)`` or None when it is not a number (missing values are not numbers)."""
    if is_missing(text):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def column_kind(table: Table, j: int) -> Literal["numeric", "categorical"]:
    """``numeric`` when every present value is a number; ``categorical`` when most are not;
    a mostly-numeric column with words in it is refused at its first word (line, column)."""
    name = table.header[j]
    present = [(value, line) for value, line in zip(table.values(j), table.lines) if not is_missing(value)]
    if not present:
        raise DataError(f"{table.path}: column {name!r} has no values (all missing); drop the column")
    words = [(value, line) for value, line in present if parse_number(value) is None]
    if not words:
        return "numeric"
    if len(words) * 2 <= len(present):
        value, line = words[0]
        raise DataError(
            f"{table.path} line {line}, column {name!r}: {value!r} is not a number, but the column's other "
            "values are; fix the value (or leave it empty and use --impute)"
        )
    return "categorical"


def class_key(text: str) -> str:
    """The class a label stands for: numbers written differently (``1``, ``1.0``) are one class."""
    number = parse_number(text)
    return f"{number:g}" if number is not None and math.isfinite(number) else text.strip()


def infer_task(values: list[str]) -> Literal["classification", "regression"]:
    """Regression when every value is a number and they are not a few whole numbers
    (at most :data:`MAX_CLASSES_FROM_NUMBERS` distinct); classification otherwise."""
    numbers = [parse_number(v) for v in values]
    if any(n is None for n in numbers):
        return "classification"
    whole = all(float(n).is_integer() for n in numbers)
    return "classification" if whole and len(set(numbers)) <= MAX_CLASSES_FROM_NUMBERS else "regression"


def sorted_classes(keys: set[str]) -> list[str]:
    """Class names in numeric order when they are all numbers, else alphabetical."""
    if all(parse_number(k) is not None for k in keys):
        return sorted(keys, key=lambda k: float(k))
    return sorted(keys)


@dataclass
class Column:
    """One feature column: its kind, categories (one-hot order) and the fill for missing values."""

    name: str
    kind: Literal["numeric", "categorical"]
    categories: list[str] | None = None
    fill: float | str | None = None

    def width(self) -> int:
        return 1 if self.kind == "numeric" else len(self.categories or [])


@dataclass
class TableEncoder:
    """Everything fitted to turn a table's text into numbers: feature columns, target, classes.

    ``fit`` takes categories and classes from every row of the file (so the test split cannot
    hold an unknown one) but imputation values from the training rows only."""

    target: str
    task: Literal["classification", "regression"]
    columns: list[Column] = field(default_factory=list)
    classes: list[str] | None = None
    impute: str | None = None
    id_column: str | None = None

    @classmethod
    def fit(
        cls,
        table: Table,
        target: str | None,
        task: str | None,
        impute: str | None,
        train_rows: np.ndarray | None = None,
    ) -> TableEncoder:
        """Type the columns of ``table`` and fit the encoding (fills from ``train_rows``)."""
        if impute is not None and impute not in IMPUTATIONS:
            raise DataError(f"unknown imputation {impute!r}; use --impute mean or --impute median")
        if task is not None and task not in TASKS:
            raise DataError(f"unknown task {task!r}; use --task classification or --task regression")
        target = table.header[-1] if target is None else target
        t = table.column(target)
        if len(table.header) < 2:
            raise DataError(f"{table.path} has only the target column {target!r}; it needs feature columns too")
        labels = table.values(t)
        for value, line in zip(labels, table.lines):
            if is_missing(value):
                raise DataError(
                    f"{table.path} line {line}, column {target!r}: the target is missing; drop the row or fill it"
                )
        task = task or infer_task(labels)
        encoder = cls(target=target, task=task, impute=impute)
        if task == "classification":
            encoder.classes = sorted_classes({class_key(v) for v in labels})
            if len(encoder.classes) < 2:
                raise DataError(
                    f"{table.path}: the target column {target!r} has one class ({encoder.classes[0]!r}); "
                    "classification needs two or more (choose another --target, or --task regression)"
                )
        else:
            for value, line in zip(labels, table.lines):
                number = parse_number(value)
                if number is None or not math.isfinite(number):
                    raise DataError(
                        f"{table.path} line {line}, column {target!r}: {value!r} is not a finite number, "
                        "but a regression target must be (or use --task classification)"
                    )
        rows = np.arange(len(table.rows)) if train_rows is None else train_rows
        for j, name in enumerate(table.header):
            if j == t:
                continue
            if name.lower() == ID_COLUMN and encoder.id_column is None:
                encoder.id_column = name
                continue
            encoder.columns.append(_fit_column(table, j, rows, impute))
        if not encoder.columns:
            raise DataError(f"{table.path} has no feature columns besides {target!r} and the id column")
        return encoder

    @property
    def width(self) -> int:
        """Number of encoded features."""
        return sum(column.width() for column in self.columns)

    def feature_names(self) -> list[str]:
        names = []
        for column in self.columns:
            if column.kind == "numeric":
                names.append(column.name)
            else:
                names += [f"{column.name}={category}" for category in column.categories or []]
        return names

    def transform(self, table: Table) -> np.ndarray:
        """Features (N, width) float64 of ``table``'s rows; columns found by name (any order,
        extra columns ignored). A missing column, a missing value without a fill, a word in a
        numeric column or an unseen category is refused naming the line and column."""
        check_fits(len(table.rows) * self.width * 8, f"encoding {table.path}", "use fewer rows", DataError)
        x = np.empty((len(table.rows), self.width), dtype=np.float64)  # (N, F)
        offset = 0
        for column in self.columns:
            if column.name not in table.header:
                raise DataError(
                    f"{table.path} has no column {column.name!r}, which the model was trained on; "
                    f"its columns are: {', '.join(table.header)}"
                )
            values = table.values(table.header.index(column.name))
            if column.kind == "numeric":
                x[:, offset] = [self._number(table, column, v, line) for v, line in zip(values, table.lines)]
            else:
                x[:, offset : offset + column.width()] = 0.0
                index = {category: k for k, category in enumerate(column.categories or [])}
                for i, (value, line) in enumerate(zip(values, table.lines)):
                    x[i, offset + self._category(table, column, value, line, index)] = 1.0
            offset += column.width()
        return x

    def _number(self, table: Table, column: Column, value: str, line: int) -> float:
        if is_missing(value):
            if column.fill is None:
                raise _missing(table.path, line, column.name)
            return float(column.fill)
        number = parse_number(value)
        if number is None:
            raise DataError(f"{table.path} line {line}, column {column.name!r}: {value!r} is not a number")
        if not math.isfinite(number):
            raise DataError(f"{table.path} line {line}, column {column.name!r}: {value!r} is not a finite number")
        return number

    def _category(self, table: Table, column: Column, value: str, line: int, index: dict[str, int]) -> int:
        if is_missing(value):
            if column.fill is None:
                raise _missing(table.path, line, column.name)
            value = str(column.fill)
        if value not in index:
            known = ", ".join(column.categories or [])
            raise DataError(
                f"{table.path} line {line}, column {column.name!r}: category {value!r} was not seen in training "
                f"(known: {known})"
            )
        return index[value]

    def targets(self, table: Table) -> np.ndarray:
        """Class indices (N,) int64 or targets (N, 1) float32 of ``table``'s target column;
        a label not among the training classes is refused naming the line and column."""
        values = table.values(table.column(self.target))
        if self.task == "regression":
            return np.array([[float(v)] for v in values], dtype=np.float32)
        index = {name: k for k, name in enumerate(self.classes or [])}
        labels = np.empty(len(values), dtype=np.int64)
        for i, (value, line) in enumerate(zip(values, table.lines)):
            key = class_key(value)
            if key not in index:
                raise DataError(
                    f"{table.path} line {line}, column {self.target!r}: label {value!r} was not seen in training "
                    f"(classes: {', '.join(self.classes or [])})"
                )
            labels[i] = index[key]
        return labels

    def ids(self, table: Table) -> list[str]:
        """The id column's values, else the data rows' numbers 0..N-1."""
        if self.id_column is not None and self.id_column in table.header:
            return table.values(table.header.index(self.id_column))
        return [str(i) for i in range(len(table.rows))]

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "task": self.task,
            "classes": self.classes,
            "impute": self.impute,
            "id_column": self.id_column,
            "columns": [
                {"name": c.name, "kind": c.kind, "categories": c.categories, "fill": c.fill} for c in self.columns
            ],
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> TableEncoder:
        try:
            columns = [Column(c["name"], c["kind"], c.get("categories"), c.get("fill")) for c in record["columns"]]
            return cls(
                target=record["target"],
                task=record["task"],
                columns=columns,
                classes=record.get("classes"),
                impute=record.get("impute"),
                id_column=record.get("id_column"),
            )
        except (KeyError, TypeError) as err:
            raise DataError(f"not a table encoding record ({err!r} missing or malformed); the run is damaged") from None


def _missing(path: str, line: int, name: str) -> DataError:
    return DataError(
        f"{path} line {line}, column {name!r}: missing value; fill it, drop the row, or train with --impute mean|median"
    )


def _fit_column(table: Table, j: int, rows: np.ndarray, impute: str | None) -> Column:
    """Type column ``j`` and fit its categories (all rows) and fill value (``rows``)."""
    name = table.header[j]
    kind = column_kind(table, j)
    values = table.values(j)
    train = [values[i] for i in rows]
    if kind == "categorical":
        categories = sorted({v for v in values if not is_missing(v)})
        fill = None
        if impute is not None:
            present = [v for v in train if not is_missing(v)]
            fill = max(categories, key=present.count) if present else categories[0]
        return Column(name, "categorical", categories, fill)
    fill_value = None
    if impute is not None:
        numbers = np.array([n for n in map(parse_number, train) if n is not None], dtype=np.float64)
        if len(numbers) == 0:
            raise DataError(f"{table.path}: column {name!r} has no values in the training rows to impute from")
        fill_value = float(np.mean(numbers) if impute == "mean" else np.median(numbers))
    return Column(name, "numeric", None, fill_value)
