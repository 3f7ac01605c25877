"""The pump's event log as files: JSON lines (one record per line) or CSV (one row each).

A record is a `log` frame's body (docs/protocol.md): an event as it was sent, with
"t": "log". JSON lines keep each record exactly (keys sorted). CSV flattens them for a
spreadsheet: fixed columns first, then one column per other key found in any record,
by name.

    boot,up_day,up_ms,pump_time,ev,<every other key, sorted>

`boot` counts the power-ups seen so far in the log (the `boots` of the latest
`power_up` record, empty before the first): up_day/up_ms start again at every power-up,
so (boot, up_day, up_ms) orders the records. Numbers are the pump's integers (ng, nL,
ms), never rounded; true/false as written in JSON; a missing key or null is an empty
cell; lists and objects are compact JSON in their cell.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable, TextIO

FIXED = ("boot", "up_day", "up_ms", "pump_time", "ev")
_NOT_COLUMNS = set(FIXED) | {"t"}


def pump_time(up_day: Any, up_ms: Any) -> str:
    # "day 3 07:30:00" (since power-up), as the dashboard writes it
    if type(up_day) is not int or type(up_ms) is not int:
        return ""
    s = up_ms // 1000
    return "day %d %02d:%02d:%02d" % (up_day, s // 3600, s // 60 % 60, s % 60)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def columns(records: Iterable[dict[str, Any]]) -> list[str]:
    extra: set[str] = set()
    for r in records:
        extra.update(k for k in r if k not in _NOT_COLUMNS)
    return list(FIXED) + sorted(extra)


def rows(records: list[dict[str, Any]]) -> Iterable[list[str]]:
    cols = columns(records)
    yield cols
    boot: Any = None
    for r in records:
        if r.get("ev") == "power_up":
            boot = r.get("boots", boot)
        fixed = {"boot": cell(boot), "up_day": cell(r.get("up_day")), "up_ms": cell(r.get("up_ms")),
                 "pump_time": pump_time(r.get("up_day"), r.get("up_ms")), "ev": cell(r.get("ev"))}
        yield [fixed[c] if c in fixed else cell(r.get(c)) for c in cols]


def write_csv(records: list[dict[str, Any]], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    for row in rows(records):
        writer.writerow(row)


def write_jsonl(records: list[dict[str, Any]], out: TextIO) -> None:
    for r in records:
        out.write(json.dumps(r, sort_keys=True) + "\n")


FORMATS = {"csv": write_csv, "jsonl": write_jsonl}


def render(records: list[dict[str, Any]], fmt: str) -> str:
    out = io.StringIO()
    FORMATS[fmt](records, out)
    return out.getvalue()


def read_csv(text: str) -> list[dict[str, str]]:
    # The CSV back as one dict per row (tests, and scripts that post-process an export).
    return list(csv.DictReader(io.StringIO(text)))
