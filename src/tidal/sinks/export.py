"""Exporting a job's results to Parquet, JSON Lines or CSV files."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from tidal.errors import UsageError
from tidal.tracking.store import Store

Format = Literal["parquet", "jsonl", "csv"]
FORMATS: tuple[str, ...] = ("parquet", "jsonl", "csv")


def export(store: Store, job_id: str, output: Path, fmt: str, include_failed: bool = False) -> int:
    """Write the job's rows (streamed from the store) to ``output``; return how many were written."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return write_rows(store.results(job_id, include_failed), output, fmt)


def write_rows(rows: Iterable[dict[str, Any]], output: Path, fmt: str) -> int:
    """Write rows (dicts, streamed) to ``output`` as ``fmt``; return how many were written."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    output.parent.mkdir(parents=True, exist_ok=True)
    writer = {"parquet": _parquet, "jsonl": _jsonl, "csv": _csv}[fmt]
    return writer(rows, output)


def _jsonl(rows: Iterable[dict[str, Any]], output: Path) -> int:
    count = 0
    with output.open("w", encoding="utf-8") as stream:
        for row in rows:
            stream.write(json.dumps(row, separators=(",", ":")) + "\n")
            count += 1
    return count


def _csv(rows: Iterable[dict[str, Any]], output: Path) -> int:
    """CSV cannot nest: lists and mappings are written as JSON text in their cell."""
    count = 0
    with output.open("w", encoding="utf-8", newline="") as stream:
        writer: csv.DictWriter[str] | None = None
        for row in rows:
            flat = {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()}
            if writer is None:
                writer = csv.DictWriter(stream, fieldnames=list(flat), extrasaction="ignore")
                writer.writeheader()
            writer.writerow(flat)
            count += 1
    return count


def _parquet(rows: Iterable[dict[str, Any]], output: Path, chunk: int = 50_000) -> int:
    """Streamed in row groups so an export of millions of rows stays in bounded memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    count = 0
    buffer: list[dict[str, Any]] = []
    try:
        for row in rows:
            buffer.append(row)
            if len(buffer) >= chunk:
                writer = _write_group(pa, pq, writer, buffer, output)
                count, buffer = count + len(buffer), []
        if buffer or writer is None:
            writer = _write_group(pa, pq, writer, buffer, output)
            count += len(buffer)
    finally:
        if writer is not None:
            writer.close()
    return count


def _write_group(pa: Any, pq: Any, writer: Any, buffer: list[dict[str, Any]], output: Path) -> Any:
    if writer is None:
        table = pa.Table.from_pylist(buffer)
        writer = pq.ParquetWriter(output, table.schema)
    else:
        table = pa.Table.from_pylist(buffer, schema=writer.schema)
    writer.write_table(table)
    return writer
