"""The pump's event log as files: JSON lines (one record per line) or CSV (one row each).

A record is a `log` frame's body (docs/protocol.md): an event as it was sent, with
"t": "log". JSON lines keep each record exactly (keys sorted). CSV flattens them for a
spreadsheet: fixed columns first, then one column per other key found in any record,
by name.

    boot,wall_clock,up_day,up_ms,pump_time,ev,<every other key, sorted>

`boot` is the `boots` of the power_up record that starts the record's boot (empty before
the first): up_day/up_ms start again at every power-up, so (boot, up_day, up_ms) orders
the records. `wall_clock` is where the record stands on the pump's wall clock
("2024-01-01T07:30:00"), placed from the pump's own anchors (tools/clinical.py); empty
where the pump's clock was not set. JSON lines carry it as a `wall_clock` key (null when
unknown) beside the record's own keys. Numbers are the pump's integers (ng, nL, ms),
never rounded; true/false as written in JSON; a missing key or null is an empty cell;
lists and objects are compact JSON in their cell.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable, TextIO

from tools import clinical

FIXED = ("boot", "wall_clock", "up_day", "up_ms", "pump_time", "ev")
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


def placed(records: list[dict[str, Any]], status: dict[str, Any] | None = None) -> list[tuple[Any, str | None]]:
    # (boot, wall clock ISO text or None) of each record; `status`, a status frame of the
    # pump now, anchors the last boot on the wall clock when its records do not
    bodies = list(records) + ([status] if status else [])
    walls = clinical.place_on_wall_clock(bodies)[:len(records)]
    boot_index = clinical.boots(bodies)[:len(records)]
    numbers: dict[int, Any] = {}
    for r, b in zip(records, boot_index):
        if r.get("ev") == "power_up" and b not in numbers:
            numbers[b] = r.get("boots")
    return [(numbers.get(b), clinical.wall_iso(w)) for b, w in zip(boot_index, walls)]


def rows(records: list[dict[str, Any]], status: dict[str, Any] | None = None) -> Iterable[list[str]]:
    cols = columns(records)
    yield cols
    for r, (boot, wall) in zip(records, placed(records, status)):
        fixed = {"boot": cell(boot), "wall_clock": cell(wall), "up_day": cell(r.get("up_day")),
                 "up_ms": cell(r.get("up_ms")), "pump_time": pump_time(r.get("up_day"), r.get("up_ms")),
                 "ev": cell(r.get("ev"))}
        yield [fixed[c] if c in fixed else cell(r.get(c)) for c in cols]


def write_csv(records: list[dict[str, Any]], out: TextIO, status: dict[str, Any] | None = None) -> None:
    writer = csv.writer(out, lineterminator="\n")
    for row in rows(records, status):
        writer.writerow(row)


def write_jsonl(records: list[dict[str, Any]], out: TextIO, status: dict[str, Any] | None = None) -> None:
    for r, (_, wall) in zip(records, placed(records, status)):
        out.write(json.dumps(dict(r, wall_clock=wall), sort_keys=True) + "\n")


FORMATS = {"csv": write_csv, "jsonl": write_jsonl}


def render(records: list[dict[str, Any]], fmt: str, status: dict[str, Any] | None = None) -> str:
    out = io.StringIO()
    FORMATS[fmt](records, out, status)
    return out.getvalue()


def read_csv(text: str) -> list[dict[str, str]]:
    # The CSV back as one dict per row (tests, and scripts that post-process an export).
    return list(csv.DictReader(io.StringIO(text)))
