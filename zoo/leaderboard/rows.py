"""What one leaderboard row holds, where it was measured, and the checks that keep rows complete."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from zoo.errors import DataError, MissingFileError

__all__ = ["REQUIRED_FIELDS", "read_rows", "row_id", "validate_row"]

# Field -> type(s) it must have. A row missing one, or with another type, is rejected.
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "suite": str,
    "recipe": str,
    "recipe_sha256": str,
    "overrides": list,
    "budget": str,
    "seed": int,
    "git": dict,
    "packages": dict,
    "hardware": dict,
    "metrics": dict,
    "quality": dict,
    "params": int,
    "flops_per_sample": (int, type(None)),
    "train_seconds": (int, float),
    "samples_per_second": (int, float, type(None)),
    "peak_memory_mb": (int, float),
    "export": dict,
    "command": str,
    "date": str,
}
_NUMBER = (int, float)
# Fields inside the sections that the tables and plots read; a string where a number belongs is named up front.
_NESTED_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "quality": {"metric": str, "value": _NUMBER, "higher_is_better": bool},
    "hardware": {"cpu": str, "cpu_threads": int},
    "git": {"commit": (str, type(None)), "dirty": (bool, type(None))},
}


def row_id(row: dict[str, Any]) -> str:
    """A row's id, as weight cards cite it: ``<suite>/<recipe stem>/<budget>/seed<N>@<commit[:8]>``."""
    commit = ((row.get("git") or {}).get("commit") or "unknown")[:8]
    return f"{row['suite']}/{Path(row['recipe']).stem}/{row['budget']}/seed{row['seed']}@{commit}"


def validate_row(row: Any, where: str = "row") -> dict[str, Any]:
    """Return ``row`` if it has every field of :data:`REQUIRED_FIELDS` with the right type.

    Raises:
        DataError: Naming ``where`` (file and line) and every missing or mistyped field, the nested ones the
            tables read (``quality.value``, ``metrics.*``, ``hardware.cpu_threads``, ...) included.
    """
    if not isinstance(row, dict):
        raise DataError(f"{where}: a leaderboard row must be a JSON object, got {type(row).__name__}")
    missing = [name for name in REQUIRED_FIELDS if name not in row]
    mistyped = [
        f"{name} ({type(row[name]).__name__})"
        for name, kind in REQUIRED_FIELDS.items()
        if name in row and not _is(row[name], kind)
    ]
    if missing or mistyped:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"wrong type: {', '.join(mistyped)}"] if mistyped else []
        )
        raise DataError(f"{where}: incomplete leaderboard row: {'; '.join(parts)}")
    if set(row["quality"]) != {"metric", "value", "higher_is_better"}:
        raise DataError(f"{where}: quality must hold metric, value and higher_is_better, got {sorted(row['quality'])}")
    problems = [
        f"{section}.{name} {'missing' if name not in row[section] else f'is {row[section][name]!r}'}"
        for section, fields in _NESTED_FIELDS.items()
        for name, kind in fields.items()
        if name not in row[section] or not _is(row[section][name], kind)
    ]
    problems += [f"metrics.{name} is {value!r}" for name, value in row["metrics"].items() if not _is(value, _NUMBER)]
    if problems:
        raise DataError(f"{where}: leaderboard row with bad values: {'; '.join(problems)} (numbers are expected)")
    return row


def _is(value: Any, kind: type | tuple[type, ...]) -> bool:
    """``isinstance``, except that a JSON ``true`` is not a number."""
    return isinstance(value, kind) and not (isinstance(value, bool) and bool not in _types(kind))


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every row of a ``.jsonl`` results file, validated.

    Raises:
        MissingFileError: If the file does not exist.
        DataError: For a line that is not JSON or not a complete row, naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"leaderboard results {path} do not exist; run `zoo leaderboard run` first")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: not valid JSON ({err.msg} at column {err.colno})") from None
        rows.append(validate_row(row, f"{path}:{number}"))
    return rows
