"""Append-only bulk row writing for the demo seed (console/demo/seed.py):
COPY on PostgreSQL (10,000 devices and 1,000,000 job runs in a few minutes),
executemany elsewhere."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import connection

from console.fleet.models import Device

JOB_COLUMNS = [
    "device_id",
    "command_id",
    "kind",
    "trigger",
    "policy_revision_id",
    "revision_hash",
    "state",
    "started_at",
    "finished_at",
    "progress",
    "progress_detail",
    "stats",
    "bytes_added",
    "files_processed",
    "warnings",
    "warnings_count",
    "snapshot_id",
    "error",
    "idempotency_key",
    "updated_at",
]


def copy_text(value) -> str:
    """One value in PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            value = (
                value.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
        return value
    return str(value)


class Sink:
    """Append-only row writer: COPY (text format, written in large chunks) on
    PostgreSQL, executemany elsewhere."""

    def __init__(self, table: str, columns: list[str], batch: int = 5000):
        self.table, self.columns, self.batch = table, columns, batch
        self.rows: list = []
        self.count = 0
        self._copy = None
        self._cm = None
        self._cursor = connection.cursor()
        if connection.vendor == "postgresql":
            self.batch = 20000
            raw = self._cursor.cursor
            self._cm = raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN")
            self._copy = self._cm.__enter__()

    def add(self, row: tuple) -> None:
        self.count += 1
        if self._copy is not None:
            self.rows.append("\t".join(map(copy_text, row)))
        else:
            self.rows.append(row)
        if len(self.rows) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        if self._copy is not None:
            self._copy.write("\n".join(self.rows) + "\n")
        else:
            marks = ", ".join(["%s"] * len(self.columns))
            self._cursor.executemany(
                f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({marks})", self.rows
            )
        self.rows = []

    def close(self) -> None:
        self.flush()
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
        self._cursor.close()


def db_datetime(value: datetime | None):
    if value is None:
        return None
    return connection.ops.adapt_datetimefield_value(value)


def db_uuid(value: uuid.UUID):
    return Device._meta.pk.get_db_prep_value(value, connection)
