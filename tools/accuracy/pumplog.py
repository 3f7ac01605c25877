"""The pump's own account of what it delivered, from the files tools.console writes.

- `console watch --json` output (JSON lines): status frames every STATUS_PERIOD_MS (10 s
  on a Pico) carry `delivered_nl`, the volume of the strokes the rotor sensor confirmed
  since the last fill, and `rate_nl_per_day`, the set rate; events say when delivery
  started. This is the pump's count, sample by sample.
- `console log export` (JSON lines or CSV, tools/logformat.py): events only. The pump
  does not log strokes, so delivery is rebuilt from them: while `state` says running,
  strokes follow the scheduler's rule, floor(programmed volume / stroke volume)
  (firmware/pump/strokes.py), less the strokes a `withheld` or a given-up
  `strokes_unconfirmed` event reports. That is what the pump's schedule called for,
  within one stroke, not a measurement; it needs the stroke volume and how long the
  run went on after its last record (an event log cannot tell).

Either way the set rate comes from the pump (status frames, or the `program` event) as
an exact fraction: its integers, never rounded. Times are the pump's (up_day, up_ms)
since power-up; a restart starts a new run (its clock starts again at zero).
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
from fractions import Fraction
from typing import Any, NamedTuple

from tools.accuracy.curves import SAMPLE_S, AccuracyError, _dur

DAY_MS = 86400000
RECORDS_MAX = 5_000_000  # a status frame every 10 s for over a year
STATUS_GAP_MAX_S = SAMPLE_S  # the count must be reported at least every sample interval


class Delivery(NamedTuple):
    times_s: list[float]  # since the start of the infusion (negative before it)
    volumes_ul: list[float]
    hold: bool  # a count: it holds between reports (else readings to interpolate)
    rate_nl_per_day: Fraction
    stroke_nl: int | None
    what: str  # where the numbers come from, for the report
    notes: list[str]
    grid_ul: list[float] | None = None  # already on the 0.5-min grid (rebuilt from events)


def read(path: str) -> list[dict[str, Any]]:
    """The bodies of a console file: JSON lines, a CSV log export, or the pump's own
    framed log file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise AccuracyError("%s: cannot read it (%s)" % (path, e.strerror or e)) from None
    text = data.decode("utf-8", "replace")
    first = text.lstrip()[:200]
    if first.startswith("boot,") or first.startswith("\ufeffboot,"):
        return _read_csv(text, path)
    bodies: list[dict[str, Any]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if len(bodies) >= RECORDS_MAX:
            raise AccuracyError("%s: more than %d records" % (path, RECORDS_MAX))
        if line.startswith("~"):
            body = _frame_body(line.encode())
            if body is None:
                continue  # a torn or damaged frame, as the pump's reader skips it
        else:
            try:
                body = json.loads(line)
            except ValueError as e:
                raise AccuracyError("%s:%d: not JSON (%s); expected `console watch --json` output or a "
                                    "`console log export`" % (path, n, e)) from None
        if not isinstance(body, dict):
            raise AccuracyError("%s:%d: a record must be a JSON object" % (path, n))
        bodies.append(body)
    return bodies


def _frame_body(line: bytes) -> dict[str, Any] | None:
    firmware = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "firmware")
    if firmware not in sys.path:
        sys.path.append(firmware)  # appended: firmware module names must not shadow the host's
    from pump import wire
    frames = wire.Reader().feed(line + b"\n")
    return frames[0].body if frames else None


def _read_csv(text: str, path: str) -> list[dict[str, Any]]:
    rows = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(rows)
    # tools/logformat.FIXED leads every export (older ones lack the wall_clock column)
    if [h for h in header[:6] if h != "wall_clock"][:5] != ["boot", "up_day", "up_ms", "pump_time", "ev"]:
        raise AccuracyError("%s: not a log export: its header is %r" % (path, ",".join(header[:6])))
    out = []
    for n, row in enumerate(rows, 2):
        if not row:
            continue
        if len(row) != len(header):
            raise AccuracyError("%s:%d: %d cells, the header has %d" % (path, n, len(row), len(header)))
        body: dict[str, Any] = {"t": "log"}
        for key, cell in zip(header, row):
            if key in ("boot", "pump_time", "wall_clock"):
                continue
            body[key] = _cell(cell)
        out.append(body)
    return out


def _cell(text: str) -> Any:
    # tools/logformat.py's cells back: integers, true/false, JSON, text; empty is null
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    if text[0] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return text
    try:
        return int(text)
    except ValueError:
        return text


def _ms(body: dict[str, Any]) -> int:
    try:
        return int(body.get("up_day") or 0) * DAY_MS + int(body.get("up_ms") or 0)
    except (TypeError, ValueError):
        raise AccuracyError("a record's up_day/up_ms are not numbers: %s" % json.dumps(body)[:120]) from None


def runs(bodies: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Events and status frames split where the pump restarted: a power_up after the
    first, or its clock going back."""
    out: list[list[dict[str, Any]]] = [[]]
    last = None
    powered = False
    for b in bodies:
        if b.get("t") not in ("status", "event", "log") and not (b.get("t") is None and "ev" in b):
            continue  # results, summaries: not part of the record
        t = _ms(b)
        again = b.get("ev") == "power_up" and powered
        if out[-1] and (again or (last is not None and t < last)):
            out.append([])
            powered = False
        powered = powered or b.get("ev") == "power_up"
        out[-1].append(b)
        last = t
    return [r for r in out if r]


def delivery(bodies: list[dict[str, Any]], run: int | None = None, stroke_nl: int | None = None,
             start_ms: int | None = None, duration_ms: int | None = None, name: str = "the log") -> Delivery:
    """What the pump says it delivered over one run, from its start (the first time it
    began running, unless start_ms, pump time since power-up, says otherwise)."""
    all_runs = runs(bodies)
    if not all_runs:
        raise AccuracyError("%s: no status frames or events in it" % name)
    if run is None:
        if len(all_runs) > 1:
            raise AccuracyError("%s holds %d runs of the pump (it restarted): an accuracy record is one "
                                "uninterrupted run; choose one with --run N (%s)" % (
                                    name, len(all_runs), ", ".join(_run_line(i, r) for i, r in enumerate(all_runs, 1))))
        run = 1
    if not 1 <= run <= len(all_runs):
        raise AccuracyError("--run %d: %s holds %d run%s" % (run, name, len(all_runs), "" if len(all_runs) == 1 else "s"))
    records = all_runs[run - 1]
    statuses = [b for b in records if b.get("t") == "status"]
    events = [b for b in records if "ev" in b]
    if statuses:
        return _from_status(records, start_ms, name)
    notes: list[str] = []
    if start_ms is None:
        begin, notes = _start(events, name)
        if begin is None:
            raise AccuracyError("%s: the pump never runs in it (no `state` running event): nothing was "
                                "delivered, or give --start" % name)
        start_ms = _ms(events[begin])
    d = _from_events(events, start_ms, stroke_nl, duration_ms, name)
    return d._replace(notes=notes + d.notes)


def _run_line(i: int, records: list[dict[str, Any]]) -> str:
    return "run %d: %s to %s since power-up" % (i, _pump_time(_ms(records[0])), _pump_time(_ms(records[-1])))


def _pump_time(ms: int) -> str:
    s = ms // 1000
    return "day %d %02d:%02d:%02d" % (s // 86400, s // 3600 % 24, s // 60 % 60, s % 60)


def _begins(b: dict[str, Any]) -> bool:
    # delivery at the set rate begins: the pump starts running, or a clinician's pause ends
    return (b.get("ev") == "state" and b.get("state") == "running") or b.get("ev") == "resume"


def _start(records: list[dict[str, Any]], name: str) -> tuple[int | None, list[str]]:
    # The index of the event that began delivery at the set rate: the pump started
    # running, or, after the run's last pause, the resume. (A bench primes the line, pauses
    # with a keep-open rate of 0 so nothing moves, sets up the balance and resumes.)
    # None: no such event, the record began with the pump already running.
    last_pause = max((i for i, b in enumerate(records) if b.get("ev") == "pause"), default=-1)
    for i in range(last_pause + 1, len(records)):
        if _begins(records[i]):
            notes = []
            if last_pause >= 0:
                notes.append("paused at %s: the test is taken from the resume at %s" % (
                    _pump_time(_ms(records[last_pause])), _pump_time(_ms(records[i]))))
            return i, notes
    if last_pause >= 0:
        raise AccuracyError("%s: the pump was paused at %s and never resumed: nothing to measure" % (
            name, _pump_time(_ms(records[last_pause]))))
    return None, []


def _from_status(records: list[dict[str, Any]], start_ms: int | None, name: str) -> Delivery:
    # The count as of the start anchors the record: the last status frame's delivered_nl
    # before it, or 0 after a fill that came later (the count is since the last fill).
    # Frames before the start may show anything (idle, paused, priming).
    times: list[float] = []
    vols: list[float] = []
    rate: int | None = None
    stroke: int | None = None
    known: int | None = None
    start: int | None = None
    last_nl = 0
    stops = 0
    was_running = False
    begin, notes = (None, []) if start_ms is not None else _start(records, name)
    for i, b in enumerate(records):
        t = _ms(b)
        if start is None:
            if start_ms is not None:
                begins = t > start_ms
            elif begin is not None:
                begins = i == begin
            else:
                # no event began it: the record began with the pump already running (the
                # console attached later), and starts at the first running frame
                begins = b.get("t") == "status" and b.get("state") == "running" and not b.get("paused")
                if begins:
                    known = b.get("delivered_nl") if isinstance(b.get("delivered_nl"), int) else None
                    notes.append("the record begins with the pump already running (at %s since power-up): "
                                 "the start-up curve starts there, not where delivery started" % _pump_time(t))
            if begins:
                start = start_ms if start_ms is not None else t
                if known is not None:
                    times.append(0.0)
                    vols.append(known / 1000.0)
                    last_nl = known
        if b.get("ev") == "fill":
            if start is not None:
                raise AccuracyError("%s: a fill at %s, after the start: an accuracy run has none" % (name, _pump_time(t)))
            known = 0
        if b.get("t") != "status":
            continue
        try:
            nl = int(b["delivered_nl"])
        except (KeyError, TypeError, ValueError):
            raise AccuracyError("%s: a status frame at %s has no delivered_nl" % (name, _pump_time(t))) from None
        if start is None:
            known = nl
            continue
        if nl < last_nl:
            raise AccuracyError("%s: delivered_nl went back from %d to %d nL at %s (a fill or refill): an "
                                "accuracy run has none" % (name, last_nl, nl, _pump_time(t)))
        last_nl = nl
        running = b.get("state") == "running"
        if b.get("paused"):
            raise AccuracyError("%s: the pump was paused at %s (the keep-open rate ran): the accuracy test "
                                "needs one set rate" % (name, _pump_time(t)))
        if running:
            r = b.get("rate_nl_per_day")
            if not isinstance(r, int) or r <= 0:
                raise AccuracyError("%s: a running status frame at %s has no rate_nl_per_day" % (name, _pump_time(t)))
            if rate is None:
                rate = r
            elif r != rate:
                raise AccuracyError("%s: the set rate changed at %s, from %d to %d nL/day: the accuracy test "
                                    "needs one set rate" % (name, _pump_time(t), rate, r))
        elif was_running:
            stops += 1
        was_running = running
        c = b.get("strokes_confirmed")
        if stroke is None and isinstance(c, int) and c > 0 and nl % c == 0:
            stroke = nl // c
        times.append((t - start) / 1000.0)
        vols.append(nl / 1000.0)
    if start is None:
        raise AccuracyError("%s: the pump never runs in it: nothing was delivered, or give --start" % name
                            if start_ms is None else
                            "%s: nothing in it after --start %s" % (name, _pump_time(start_ms)))
    if rate is None:
        raise AccuracyError("%s: no status frame shows the pump running after the start" % name)
    if stops:
        notes.append("delivery stopped %d time%s during the record (status frames not running): the figures "
                     "include the stops" % (stops, "" if stops == 1 else "s"))
    what = "the pump's count of confirmed strokes (status frames' delivered_nl)"
    return Delivery(times, vols, True, Fraction(rate), stroke, what, notes)


def _program_rate(events: list[dict[str, Any]], start: int, name: str) -> Fraction:
    program = None
    for e in events:
        if e.get("ev") == "program" and _ms(e) <= start:
            program = e
    if program is None:
        raise AccuracyError("%s: no `program` event before the start: the set rate is unknown" % name)
    conc = program.get("conc_ug_per_ml")
    profiles = program.get("profiles") or {}
    rates = {step[1] for steps in profiles.values() for step in steps if isinstance(step, list) and len(step) == 2}
    if not isinstance(conc, int) or conc <= 0 or len(rates) != 1:
        raise AccuracyError("%s: the program in force has %s: the accuracy test needs one constant rate" % (
            name, "no concentration" if not isinstance(conc, int) or conc <= 0 else
            "%d different dose rates" % len(rates)))
    ng_per_day = rates.pop()
    return Fraction(ng_per_day * 1000, conc)  # ng/day over ug/mL (= ng/uL) is uL/day; x1000 nL/day


def _from_events(events: list[dict[str, Any]], start: int, stroke_nl: int | None,
                 duration_ms: int | None, name: str) -> Delivery:
    if stroke_nl is None:
        raise AccuracyError("%s has events only (a log export): delivery is rebuilt from them, which needs the "
                            "pump's stroke volume: give --stroke-nl (STROKE_NL in the board's config.py), or "
                            "record status frames with `console watch --json`" % name)
    if duration_ms is None:
        raise AccuracyError("%s has events only (a log export), and an event log does not say how long the "
                            "pump ran after its last record: give --duration (e.g. 3d), or record status "
                            "frames with `console watch --json`" % name)
    rate = _program_rate(events, start, name)
    end = start + duration_ms
    # running spans, and strokes given up, from the start on
    spans: list[tuple[int, int]] = []
    taken: list[tuple[int, int]] = []
    since: int | None = start
    notes: list[str] = []
    for e in events:
        t = _ms(e)
        ev = e.get("ev")
        if t < start or t > end:
            continue
        if ev in ("bolus_start", "pause", "program", "fill", "titration") and t > start:
            raise AccuracyError("%s: a `%s` event at %s: the accuracy test needs the set rate alone, "
                                "without boluses, pauses or changes" % (name, ev, _pump_time(t)))
        if ev == "state":
            if e.get("state") == "running" and since is None:
                since = t
            elif e.get("state") != "running" and since is not None:
                spans.append((since, t))
                since = None
        elif ev == "withheld" and isinstance(e.get("strokes"), int):
            taken.append((t, e["strokes"]))
        elif ev == "strokes_unconfirmed" and e.get("retry") is False and isinstance(e.get("strokes"), int):
            taken.append((t, e["strokes"]))
    if since is not None:
        spans.append((since, end))
    if len(spans) > 1:
        notes.append("delivery stopped %d time%s (state events): the figures include the stops" % (
            len(spans) - 1, "" if len(spans) == 2 else "s"))
    if taken:
        notes.append("%d stroke%s withheld or given up, as the log reports" % (
            sum(n for _, n in taken), "" if sum(n for _, n in taken) == 1 else "s"))
    stroke = Fraction(stroke_nl)
    grid = []
    g = start
    while g <= end:
        running_ms = sum(max(0, min(b, g) - a) for a, b in spans)
        strokes = rate * running_ms / DAY_MS // stroke
        strokes -= sum(n for t, n in taken if t <= g)
        grid.append(float(strokes * stroke) / 1000.0)
        g += SAMPLE_S * 1000
    what = ("the pump's schedule rebuilt from its event log (%d nL strokes, %s): what it called for, "
            "not a measurement" % (stroke_nl, _dur(duration_ms / 1000.0)))
    return Delivery([], [], True, rate, stroke_nl, what, notes, grid)
