"""What the console shows: the pump's frames turned into text, with exact unit formatting.

Pure functions and small state holders; no terminal, no port, so every figure the
console prints can be tested on its own (curses comes in only through `Painter`). Drug and volume are integers on the pump (ng,
nL); they are shown by moving the decimal point, never through a float, so 0.1 + 0.2
problems cannot make a dose look different from what the pump counted.

The live view (docs/plot.md): the status rows, the active alarms marked by priority, a
text chart of the dose delivered against the dose programmed, and the last events. Each
row carries a style name ("high", "medium", "low", ...) that `Painter` turns into curses
attributes; without colours the "!!!"/"!!"/"!" marks still tell the priorities apart.
"""
from __future__ import annotations

import collections
import os
import sys
from typing import Any, Iterable, NamedTuple

from tools import clinical
from tools.clinical import UG, decimal, drug, hmm, ml  # noqa: F401  (the console's units, re-exported)

DAY_MS = 86400000
HOUR_MS = 3600000
MINUTE_MS = 60000
NL_PER_ML = 1000000
NG_PER_UG = 1000
NG_PER_MG = 1000000
EVENTS_KEPT = 8

# Alarm priorities (docs/alarms.md), highest first, and a text mark for each in the style
# of IEC 60601-1-8 (not checked against the standard's text): the mark is what tells them
# apart where there is no colour.
PRIORITIES = ("high", "medium", "low")
PRIORITY_MARK = {"high": "!!!", "medium": "!!", "low": "!"}

# The chart: rows of plot between these (the terminal's height decides), and the status
# intervals kept for it (a bucket width is chosen so that all of them fit the width).
CHART_MIN_ROWS = 3
CHART_MAX_ROWS = 8
EVENTS_MIN = 3
HISTORY_KEPT = 20000
CHART_GUTTER = 8  # "   250 ┤": the y label, a space, the axis
# Bucket widths the chart may use: each a whole number of a unit a reader counts in.
BUCKET_MS = tuple(m * MINUTE_MS for m in (1, 2, 5, 10, 15, 30)) + tuple(
    h * HOUR_MS for h in (1, 2, 3, 6, 12)) + tuple(d * DAY_MS for d in (1, 2, 7, 14, 28))
BARS = " ▁▂▃▄▅▆▇█"  # 0..8 eighths of a cell
BARS_ASCII = "  ..::||#"
# Round numbers the chart's scale tops at, times a power of ten.
_NICE = (10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100)


def ml_per_day(rate_nl_per_day: int) -> str:
    return decimal(rate_nl_per_day, 6) + " mL/day"


def days_left(reservoir_nl: int, rate_nl_per_day: int) -> str:
    # Rounded down to a tenth: an estimate of time to empty must never overstate it.
    if rate_nl_per_day <= 0:
        return "no delivery"
    tenths = reservoir_nl * 10 // rate_nl_per_day
    return "%d.%d days" % divmod(tenths, 10)


def projected_days(days: int | None) -> str:
    # The pump's worst-case projection in whole days; -1 means beyond its 999-day horizon.
    if days is None:
        return "unknown"
    if days < 0:
        return "over 999 days"
    if days == 0:
        return "today"
    return "%d day%s" % (days, "" if days == 1 else "s")


def volts(mv: int) -> str:
    return decimal(mv, 3) + " V"


def sim_time(up_day: int, up_ms: int) -> str:
    return clinical.up_text(up_day, up_ms)


def duration_ms(ms: int) -> str:
    # A period in the largest unit that states it exactly: "15 min", "6 h", "250 ms".
    for unit, size in (("d", DAY_MS), ("h", 3600000), ("min", 60000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return "%d %s" % (ms // size, unit)
    return "%d ms" % ms


def span(ms: int) -> str:
    # A length of time to read at a glance (a chart's axis), to a tenth of its unit:
    # "45 min", "22.5 h", "3.2 d". Rounded down, like every other estimate shown here.
    if ms >= 2 * DAY_MS:
        return "%s d" % decimal(ms * 10 // DAY_MS, 1)
    if ms >= 2 * HOUR_MS:
        return "%s h" % decimal(ms * 10 // HOUR_MS, 1)
    return "%d min" % (ms // MINUTE_MS)


def event_line(body: dict[str, Any], tag: str = "", wall_ms: int | None = None) -> str:
    # "2024-01-01 00:10:00  clock set to ..." (the pump's time since power-up where its
    # wall clock is not known); `tag` goes before the text.
    return "%s  %s%s" % (clinical.when_text(body, wall_ms), tag, clinical.event_text(body))


def clock_row(status: dict[str, Any]) -> str:
    # The pump's wall clock (what a flex schedule runs on), and its time since power-up.
    up = "pump up %s" % hmm(clinical.up_of(status)) if clinical.up_of(status) >= 60000 else "pump just started"
    wall = clinical.wall_of_clock(status.get("clock"))
    if wall is None:
        return "not set (a flex schedule needs it: console clock set now); %s" % up
    text = "%s  (%s)" % (clinical.wall_text(wall, seconds=True, weekday=True), up)
    if status.get("clock_restored"):
        text += "  restored after a restart: the time without power is missing"
    return text


def pump_state(status: dict[str, Any]) -> str:
    reason = status.get("stop_reason")
    state = str(status["state"])
    if state == "running" and status.get("paused"):
        return "PAUSED by the clinician: the keep-open rate runs (console resume)"
    return state + (" (%s)" % reason if reason else "")


def program(status: dict[str, Any]) -> str:
    if not status.get("drug"):
        return "none"
    if not status["conc_ug_per_ml"]:
        return "%s  (the reservoir was never filled)" % status["drug"]
    if status.get("state") != "running":
        return "%s  %d %s/mL" % (status["drug"], status["conc_ug_per_ml"], UG)  # no dose runs now
    if status.get("paused"):
        return "%s  %d %s/mL  paused: keep-open %s/day" % (status["drug"], status["conc_ug_per_ml"], UG,
                                                             drug(status.get("rate_ng_per_day") or 0))
    return "%s  %d %s/mL  %d %s/day" % (status["drug"], status["conc_ug_per_ml"], UG,
                                        status["dose_ug_per_day"], UG)


def strokes(status: dict[str, Any]) -> str:
    return "%d programmed  %d confirmed  %d unconfirmed" % (
        status["strokes_programmed"], status["strokes_confirmed"], status["strokes_unconfirmed"])


def rate(status: dict[str, Any]) -> str:
    text = ml_per_day(status["rate_nl_per_day"])
    if "rate_ng_per_day" in status:
        text += "  %s/day" % drug(status["rate_ng_per_day"])
    return text + ("  paused (keep-open rate)" if status.get("paused") else "")


def reservoir(status: dict[str, Any]) -> str:
    left = ml(status["reservoir_nl"])
    if "reservoir_ng" in status:
        left += "  " + drug(status["reservoir_ng"])
    if "days_to_empty" in status:
        return left  # how long it lasts: the pump's own projection, on the next row
    if status["rate_nl_per_day"] <= 0:
        return left + "  (not delivering)"
    return "%s  %s left at this rate" % (left, days_left(status["reservoir_nl"], status["rate_nl_per_day"]))


def projection(status: dict[str, Any]) -> str:
    # The pump's worst case (the schedule plus every patient bolus it allows), with the
    # dates on its wall clock: the one figure of how long the reservoir lasts.
    wall = clinical.wall_of_clock(status.get("clock"))

    def when(days: Any) -> str:
        text = projected_days(days)
        if wall is not None and type(days) is int and days >= 0:
            text += " (%s)" % clinical.date_text(wall + days * DAY_MS)
        return text

    return "low level in %s, empty in %s, worst case" % (when(status.get("days_to_low")),
                                                        when(status.get("days_to_empty")))


def bolus_row(status: dict[str, Any]) -> str | None:
    b = status.get("bolus")
    if not isinstance(b, dict):
        return None
    kind = b.get("kind")
    if kind == "bridge":
        left = int(status.get("bridge_nl") or 0)
        text = "bridge: %s of the old drug still in the line, given at its own strength" % ml(left)
        rate_nl = int(status.get("rate_nl_per_day") or 0)
        if rate_nl > 0 and left:
            text += "; about %s more at this rate" % hmm(left * DAY_MS // rate_nl)
        return text
    if kind == "prime":
        return "priming: %s of %s strokes confirmed (the basal waits)" % (b.get("strokes_confirmed"),
                                                                          b.get("strokes_total"))
    text = "%s: %s of %s strokes confirmed" % (kind, b.get("strokes_confirmed"), b.get("strokes_total"))
    if b.get("requested_ng"):
        text += ", %s of %s" % (drug(int(b.get("delivered_ng") or 0)), drug(int(b["requested_ng"])))
    return text


def titration_row(status: dict[str, Any]) -> str | None:
    left = status.get("titration_in_ms")
    if type(left) is not int:
        return None
    text = "due in %s" % hmm(left)
    wall = clinical.wall_of_clock(status.get("clock"))
    if wall is not None:
        text += " (at %s)" % clinical.wall_text(wall + left)
    return text


def sensors(status: dict[str, Any]) -> str:
    parts = []
    if "pressure_mbar" in status:
        p = "pressure %d mbar" % status["pressure_mbar"]
        if "pressure_excess_mbar" in status:
            p += " (%+d over baseline)" % status["pressure_excess_mbar"]
        parts.append(p)
    if "battery_mv" in status:
        mv = status["battery_mv"]
        parts.append("battery " + (volts(mv) if mv > 0 else "not read yet"))
    return "  ".join(parts) or "no readings"


class Alarm(NamedTuple):
    code: str
    priority: str
    acknowledged: bool
    present: bool

    @classmethod
    def of(cls, entry: Any) -> "Alarm":
        # One entry of the status's `alarms`: [code, priority, acknowledged, condition_present].
        code, priority = str(entry[0]), str(entry[1])
        acked = bool(entry[2]) if len(entry) > 2 else False
        present = bool(entry[3]) if len(entry) > 3 else True
        return cls(code, priority, acked, present)

    @property
    def style(self) -> str:
        # "high", "medium", "low"; "-acked" when someone has acknowledged it.
        prio = self.priority if self.priority in PRIORITY_MARK else "low"
        return prio + ("-acked" if self.acknowledged else "")

    def text(self) -> str:
        mark = PRIORITY_MARK.get(self.priority, "?")
        return "%-3s %-16s %-6s  %s  %s" % (
            mark, self.code, self.priority,
            "acknowledged" if self.acknowledged else "NOT ACKNOWLEDGED",
            "condition present" if self.present else "condition gone")


def alarms(status: dict[str, Any]) -> list[Alarm]:
    # The active alarms, highest priority first; the pump's order (oldest first) within
    # a priority.
    found = [Alarm.of(a) for a in status.get("alarms") or []]
    rank = {p: i for i, p in enumerate(PRIORITIES)}
    return sorted(found, key=lambda a: rank.get(a.priority, len(PRIORITIES)))


def alarm_rows(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    # (label, text, style) rows: the "Alarms" label on the first, one alarm a row, and
    # a "Sound" row while the sound is silenced.
    found = alarms(status)
    rows = [("Alarms" if i == 0 else "", a.text(), a.style) for i, a in enumerate(found)]
    rows = rows or [("Alarms", "none", "")]
    if status.get("silenced"):
        rows.append(("Sound", "silenced (the alarm light stays on)", ""))
    return rows


def alarm_summary(status: dict[str, Any]) -> str:
    # The alarms in a few words, for one-line output: "occlusion!!! clock_not_set!(acked)".
    found = alarms(status)
    if not found:
        return ""
    words = " ".join(a.code + PRIORITY_MARK.get(a.priority, "?") + ("(acked)" if a.acknowledged else "")
                     for a in found)
    return "alarms " + words + (" silenced" if status.get("silenced") else "")


def styled_status_rows(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    # (label, text, style) rows of one status: the dashboard, `console status` and the
    # final summary share them (status_fields drops the style).
    stopped = status["state"] == "stopped"
    rows = [
        ("Clock", clock_row(status), ""),
        ("Pump", pump_state(status), "high" if stopped else ("medium" if status.get("paused") else "")),
        ("Program", program(status), ""),
        ("Rate", rate(status), ""),
    ]
    extra = bolus_row(status)
    if extra:
        rows.append(("Bolus", extra, ""))
    extra = titration_row(status)
    if extra:
        rows.append(("Titration", extra, ""))
    rows += [
        ("Delivered", "%s  %s  since the last fill" % (ml(status["delivered_nl"]), drug(status["delivered_ng"])), ""),
        ("Reservoir", reservoir(status), ""),
    ]
    if "days_to_empty" in status:
        rows.append(("Refill", projection(status), ""))
    rows.append(("Strokes", strokes(status), ""))
    if "pressure_mbar" in status or "battery_mv" in status:
        rows.append(("Sensors", sensors(status), ""))
    if "alarms" in status:
        rows += alarm_rows(status)
    return rows


def status_fields(status: dict[str, Any]) -> list[tuple[str, str]]:
    # (label, text) rows: the dashboard, `console status` and the final summary share them.
    return [(label, text) for label, text, _ in styled_status_rows(status)]


def status_time(status: dict[str, Any]) -> str:
    # a status frame's moment: its wall clock, else the pump's time since power-up
    return clinical.when_text(status, clinical.wall_of_clock(status.get("clock")))


def plain_line(status: dict[str, Any]) -> str:
    # One status frame as one line, for logs and pipes.
    if "days_to_empty" in status:
        lasts = "empty in %s worst case" % projected_days(status.get("days_to_empty"))
    else:
        lasts = days_left(status["reservoir_nl"], status["rate_nl_per_day"])
    line = "%s  %s  %s  rate %s  delivered %s %s  reservoir %s (%s)  strokes %s" % (
        status_time(status), pump_state(status).split(":")[0], program(status),
        ml_per_day(status["rate_nl_per_day"]), ml(status["delivered_nl"]),
        drug(status["delivered_ng"]), ml(status["reservoir_nl"]), lasts, strokes(status))
    extra = alarm_summary(status)
    return line + ("  " + extra if extra else "")


# ---- the dose chart ---------------------------------------------------------------------

class Bucket(NamedTuple):
    # One column of the chart: the mean dose rates over the time its intervals cover.
    delivered_ng_per_day: int
    programmed_ng_per_day: int


class DoseHistory:
    """Delivered and programmed drug per interval between status frames.

    Delivered is the change of the status's `delivered_ng` (drug that left the catheter
    tip, boluses included). Programmed, while the pump runs, is the basal rate the status
    reports (`rate_ng_per_day`: the flex step, or keep-open while paused) over the
    interval; where the rate changed between two frames (a flex step, a titration) the
    change is taken half-way. While an alarm has delivery stopped the pump reports rate 0,
    so the last running rate is held: the chart then shows what the patient is missing.
    Idle (no program) programs nothing. A fill restarts the pump's counters; a restart of
    the pump (its time goes back) joins the new run after the old one, as if no time
    passed, and the interval across it is left out (after a restart the pump's count
    jumps by its lease, docs/protocol.md).
    """

    def __init__(self, kept: int = HISTORY_KEPT) -> None:
        # (end ms, length ms, delivered ng, programmed ng*ms/day) per interval
        self.intervals: collections.deque[tuple[int, int, int, int]] = collections.deque(maxlen=kept)
        self.last: dict[str, Any] | None = None
        self.last_t = 0
        self.offset = 0  # added to the pump's time after a restart
        self.held = 0  # the basal rate while running, kept over a stop
        self.added = 0  # intervals added so far: with the width, the key of the cache
        self._cache: tuple[tuple[int, int], tuple[int, int, list[Bucket | None]]] | None = None

    def add(self, status: dict[str, Any]) -> None:
        t = status["up_day"] * DAY_MS + status["up_ms"] + self.offset
        prev = self.last
        if prev is not None and t < self.last_t:  # the pump restarted
            self.offset = self.last_t - (t - self.offset)
            t = self.last_t
            prev = None
        if prev is not None and t > self.last_t:
            dt = t - self.last_t
            delivered = status["delivered_ng"] - prev["delivered_ng"]
            if delivered < 0:  # filled meanwhile: the counter started again from zero
                delivered = status["delivered_ng"]
            self.intervals.append((t, dt, delivered, self._programmed(prev, status, dt)))
            self.added += 1
        if status["state"] == "running":
            self.held = status.get("rate_ng_per_day", 0)
        elif status["state"] != "stopped":
            self.held = 0
        self.last = status
        self.last_t = t

    def _programmed(self, prev: dict[str, Any], status: dict[str, Any], dt: int) -> int:
        # The drug programmed over the interval from prev to status, in ng * DAY_MS (a
        # rate in ng/day times ms).
        if prev["state"] == "running":
            r0 = int(prev.get("rate_ng_per_day", 0))
            r1 = int(status.get("rate_ng_per_day", 0)) if status["state"] == "running" else r0
            return (r0 + r1) * dt // 2
        if prev["state"] == "stopped":
            return self.held * dt
        return 0

    def period_ms(self) -> int:
        # The usual time between status frames: the median of the last few intervals.
        recent = sorted(dt for _, dt, _, _ in list(self.intervals)[-16:])
        return recent[len(recent) // 2] if recent else 0

    def buckets(self, columns: int) -> tuple[int, int, list[Bucket | None]]:
        # (bucket ms, start ms of the first bucket, columns) for at most `columns`
        # columns, newest last; None where no interval ended in a bucket.
        if not self.intervals or columns <= 0:
            return 0, 0, []
        if self._cache is not None and self._cache[0] == (self.added, columns):
            return self._cache[1]
        self._cache = ((self.added, columns), self._buckets(columns))
        return self._cache[1]

    def _buckets(self, columns: int) -> tuple[int, int, list[Bucket | None]]:
        first = self.intervals[0][0] - self.intervals[0][1]
        last = self.intervals[-1][0]
        period = self.period_ms()
        size = BUCKET_MS[-1]
        for b in BUCKET_MS:
            if b >= period and (last - 1) // b - first // b < columns:
                size = b
                break
        end = (last - 1) // size
        start = max(end - columns + 1, first // size)
        sums: dict[int, list[int]] = {}
        for t, dt, delivered, programmed in self.intervals:
            k = (t - 1) // size
            if k < start:
                continue
            s = sums.setdefault(k, [0, 0, 0])
            s[0] += dt
            s[1] += delivered
            s[2] += programmed
        out: list[Bucket | None] = []
        for k in range(start, end + 1):
            got = sums.get(k)
            out.append(None if got is None else Bucket(got[1] * DAY_MS // got[0], got[2] // got[0]))
        return size, start * size, out


def nice_top(value: int) -> int:
    # The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten,
    # 10 at least) at or above value, so the chart's scale reads easily; 1 for nothing.
    if value <= 0:
        return 1
    scale = 1
    while value > 100 * scale:
        scale *= 10
    for n in _NICE:
        if n * scale >= value:
            return n * scale
    return 100 * scale


def bar_chart(columns: list[Bucket | None], rows: int, top: int, ascii: bool = False) -> list[str]:
    """The plot area, top row first: a bar per column for delivered, in eighths of a row,
    and the programmed level marked in every column, over the bar: above a bar that falls
    short, across one that reaches past it (a bolus), on top of one that reaches it."""
    bars = BARS_ASCII if ascii else BARS
    mark = "-" if ascii else "─"
    out = []
    levels = rows * 8
    scaled = [None if c is None else (_scale(c.delivered_ng_per_day, top, levels),
                                      _scale(c.programmed_ng_per_day, top, levels)) for c in columns]
    for row in range(rows - 1, -1, -1):
        base = row * 8
        cells = []
        for c in scaled:
            if c is None:
                cells.append(" ")
                continue
            bar, prog = c
            fill = min(max(bar - base, 0), 8)
            if prog > 0 and (prog - 1) // 8 == row:
                cells.append(mark)
            else:
                cells.append(bars[fill])
        out.append("".join(cells))
    return out


def _scale(value: int, top: int, levels: int) -> int:
    # value in 0..top to 0..levels eighths, rounded to the nearest; above top: full.
    return min((value * levels * 2 + top) // (top * 2), levels)


def dose_chart(history: DoseHistory, width: int, rows: int, ascii: bool = False) -> list[str]:
    """The dose chart as text lines: a title, `rows` rows of plot with the scale in
    ug/day on the left, and a time axis; `width` characters at most."""
    columns = max(width - CHART_GUTTER - 1, 1)
    size, _, buckets = history.buckets(columns)
    if not buckets:  # as tall as the chart will be, so that nothing below it moves
        return ["Dose: the chart starts at the second status frame"] + [""] * (rows + 1)
    full, mark = ("#", "-") if ascii else ("█", "─")
    title = "Dose per %s, %s/day:  %s delivered  %s programmed basal" % (duration_ms(size), UG, full, mark)
    peak = max(max(b.delivered_ng_per_day, b.programmed_ng_per_day) for b in buckets if b is not None)
    top = nice_top(peak)
    plot = bar_chart(buckets, rows, top, ascii)
    top_label = decimal(top, 3)
    out = [title]
    for i, line in enumerate(plot):
        label = top_label if i == 0 else ("0" if i == rows - 1 else "")
        axis = ("|" if ascii else "┤") if label else ("|" if ascii else "│")
        out.append("%6s %s%s" % (label[-6:], axis, line))
    ago = span(len(buckets) * size)
    left, right = "%s ago" % ago, "now"
    gap = max(len(buckets) - len(left) - len(right), 1)
    out.append(" " * CHART_GUTTER + left + " " * gap + right)
    return [line[:width] for line in out]


# ---- the dashboard ----------------------------------------------------------------------

class LinkHealth:
    # The counters of tools.link.Link, copied so the view needs no live port.
    def __init__(self, frames: int = 0, bad_crc: int = 0, bad_format: int = 0,
                 garbage_bytes: int = 0, lost: int = 0, age_s: float | None = None) -> None:
        self.frames = frames
        self.bad_crc = bad_crc
        self.bad_format = bad_format
        self.garbage_bytes = garbage_bytes
        self.lost = lost
        self.age_s = age_s

    @classmethod
    def of(cls, link: Any, now: float) -> "LinkHealth":
        age = None if link.last_frame_at is None else now - link.last_frame_at
        return cls(link.frames_in, link.bad_crc, link.bad_format, link.garbage_bytes,
                   link.frames_lost, age)

    def rows(self, with_age: bool = True) -> list[tuple[str, str]]:
        frames = "%d frames received, %d lost" % (self.frames, self.lost)
        if with_age:
            frames += ", no frame yet" if self.age_s is None else ", last %.1f s ago" % self.age_s
        errors = "%d bad CRC, %d malformed, %d garbage bytes" % (
            self.bad_crc, self.bad_format, self.garbage_bytes)
        return [("Link", frames), ("Link errors", errors)]

    def to_dict(self) -> dict[str, int]:
        return {"frames": self.frames, "bad_crc": self.bad_crc, "bad_format": self.bad_format,
                "garbage_bytes": self.garbage_bytes, "lost": self.lost}


def terminal_size() -> tuple[int, int] | None:
    # (columns, lines) of the screen: the size curses draws in while it runs (it can
    # differ from the terminal's when a resize has not reached it yet, and what it does
    # not know of it clips), else the terminal on stdout, else None.
    curses = sys.modules.get("curses")
    if curses is not None and hasattr(curses, "LINES"):  # set by initscr()
        try:
            if not curses.isendwin():
                curses.update_lines_cols()  # what the last KEY_RESIZE told it
                return curses.COLS, curses.LINES
        except curses.error:
            pass
    out = sys.__stdout__
    if out is None:
        return None
    try:
        size = os.get_terminal_size(out.fileno())
    except (ValueError, OSError):
        return None
    return size.columns, size.lines


def can_draw_blocks(encoding: str | None) -> bool:
    try:
        (BARS + "─│┤").encode(encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return False
    return True


class Dashboard:
    # The newest status, the dose history and the last few events, fed frame bodies as
    # they arrive.
    def __init__(self, title: str, ascii: bool | None = None) -> None:
        self.title = title
        self.status: dict[str, Any] | None = None
        # (event body, its wall clock or None), newest last
        self.events: collections.deque[tuple[dict[str, Any], int | None]] = collections.deque(maxlen=EVENTS_KEPT)
        self.statuses = 0
        self.history = DoseHistory()
        self.placer = clinical.LivePlacer()
        # a warning the console puts under the title (a silent port), or None
        self.note: str | None = None
        # ASCII chart when the output cannot carry block characters (a C-locale terminal)
        self.ascii = not can_draw_blocks(sys.stdout.encoding) if ascii is None else ascii

    def feed(self, body: dict[str, Any]) -> str | None:
        # Returns the frame's kind when the view changed ("status", "event").
        kind = body.get("t")
        if kind == "status":
            self.placer.feed(body)
            self.status = body
            self.statuses += 1
            self.history.add(body)
        elif kind == "event":
            self.events.append((body, self.placer.feed(body)))
        else:
            return None
        return kind

    def rows(self, health: LinkHealth, width: int | None = None,
             height: int | None = None) -> list[tuple[str, str]]:
        """The screen as (text, style) rows, fitted to width x height when given (else to
        the terminal on stdout, else unbounded). Styles: "title", "high", "medium", "low",
        the same with "-acked", or "" for plain text."""
        if width is None or height is None:
            size = terminal_size()
            width = width if width is not None else (size[0] if size else 100)
            height = height if height is not None else (size[1] if size else None)
        head: list[tuple[str, str]] = [(self.title, "title"), ("", "")]
        if self.note:
            head[1:1] = [(self.note, "high")]
        if self.status is None:
            head.append(("Waiting for the first status frame...", ""))
        else:
            head += [("%-15s %s" % (label, text), style)
                     for label, text, style in styled_status_rows(self.status)]
        head += [("%-15s %s" % row, "") for row in health.rows()]
        footer = [("", ""), ("q or Ctrl-C: quit", "")]
        events = list(reversed(self.events))
        n_events, chart_rows = self._share(height, len(head) + len(footer), len(events))
        out = head
        if chart_rows:
            out += [("", "")] + [(line, "") for line in
                                 dose_chart(self.history, width, chart_rows, self.ascii)]
        out += [("", ""), ("Last events", "")]
        out += [("  " + event_line(e, wall_ms=w), _event_style(e)) for e, w in events[:n_events]] or [
            ("  none yet", "")]
        out += footer
        out = [(text[:width], style) for text, style in out]
        return out if height is None else out[:height]

    @staticmethod
    def _share(height: int | None, fixed: int, events: int) -> tuple[int, int]:
        # (events shown, chart rows) in what the status rows leave: a few events first,
        # then the chart at its smallest, then the other events, then a taller chart.
        if height is None:
            return events, CHART_MAX_ROWS
        room = height - fixed - 2  # "Last events" and the blank line above it
        shown = min(events, EVENTS_MIN, max(room, 0))
        room -= max(shown, 1)
        chart = 0
        if room >= CHART_MIN_ROWS + 3:  # the blank line, the title and the time axis
            chart = CHART_MIN_ROWS
            room -= chart + 3
        more = min(events - shown, max(room, 0))
        shown += more
        room -= more
        if chart:
            chart += min(max(room, 0), CHART_MAX_ROWS - chart)
        return shown, chart

    def lines(self, health: LinkHealth, width: int | None = None, height: int | None = None) -> list[str]:
        return [text for text, _ in self.rows(health, width, height)]

    def summary(self, ending: str, health: LinkHealth) -> list[str]:
        out = ["Run ended: " + ending]
        if self.status is None:
            out.append("  no status frame was received")
        else:
            s = self.status
            out.append("Last status, at %s (pump time %s):" % (status_time(s), sim_time(s["up_day"], s["up_ms"])))
            out += ["  %-13s %s" % row for row in status_fields(s)[1:]]
        out += ["  %-13s %s" % row for row in health.rows(with_age=False)]
        return out

    def summary_json(self, ending: str, health: LinkHealth, exit_status: int | None) -> dict[str, Any]:
        return {"t": "summary", "ending": ending, "exit_status": exit_status,
                "status": self.status, "link": health.to_dict()}


def _event_style(body: dict[str, Any]) -> str:
    # An alarm raised shows in its priority's style; everything else plainly.
    if body.get("ev") == "alarm" and body.get("state") == "raised" and body.get("priority") in PRIORITY_MARK:
        return str(body["priority"])
    return ""


def fit(lines: Iterable[str], width: int) -> list[str]:
    # Clip each line to the screen width (curses raises when writing past the edge).
    return [line[:max(width - 1, 0)] for line in lines]


# ---- curses -----------------------------------------------------------------------------

_COLOURS = {"high": 1, "medium": 2, "low": 3}


def attributes(curses: Any, colours: bool) -> dict[str, int]:
    # Style name -> curses attribute. High: reverse video (red when there are colours),
    # medium: bold (yellow), low: plain (cyan); acknowledged alarms drop the emphasis but
    # keep the colour.
    def colour(prio: str) -> int:
        return curses.color_pair(_COLOURS[prio]) if colours else 0

    return {
        "title": curses.A_BOLD,
        "high": curses.A_REVERSE | curses.A_BOLD | colour("high"),
        "high-acked": curses.A_BOLD | colour("high"),
        "medium": curses.A_BOLD | colour("medium"),
        "medium-acked": colour("medium"),
        "low": colour("low"),
        "low-acked": colour("low"),
    }


def start_colours(curses: Any) -> bool:
    # Colour pairs for the priorities, on the terminal's own background; False if none.
    try:
        if not curses.has_colors():
            return False
        curses.start_color()
        try:
            curses.use_default_colors()
            background = -1
        except curses.error:
            background = curses.COLOR_BLACK
        curses.init_pair(_COLOURS["high"], curses.COLOR_RED, background)
        curses.init_pair(_COLOURS["medium"], curses.COLOR_YELLOW, background)
        curses.init_pair(_COLOURS["low"], curses.COLOR_CYAN, background)
    except curses.error:
        return False
    return True


class Painter:
    """Draws a Dashboard on a curses screen, styles included:

        painter = Painter(curses)        # after curses.initscr() (inside curses.wrapper)
        painter.draw(screen, dash, health)
    """

    def __init__(self, curses: Any) -> None:
        self.curses = curses
        self.attrs = attributes(curses, start_colours(curses))

    def draw(self, screen: Any, dash: Dashboard, health: LinkHealth) -> None:
        height, width = screen.getmaxyx()
        screen.erase()
        for row, (text, style) in enumerate(dash.rows(health, width, height)):
            line = text[:max(width - 1, 0)]
            try:
                screen.addstr(row, 0, line, self.attrs.get(style, 0))
            except self.curses.error:
                pass  # a terminal shrunk under us: the next resize redraws
        screen.refresh()
