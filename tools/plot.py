"""What a pump did, as one picture: its log (and status frames) drawn over time in a PNG.

    python -m tools.plot LOG.jsonl -o out.png            # a log export, one record a line
    python -m tools.plot run.jsonl -o run.png            # `console watch --json` output
    python -m tools.plot LOG.jsonl --status run.jsonl -o out.png

Panels, one above the other on the same time axis (docs/plot.md):

1. dose rate, ug/day: programmed (the program's schedule, from `program`, `pause`,
   `resume` and `clock` events) against delivered (from the status frames' `delivered_ng`
   when there are any, else rebuilt from the log: the basal while `state` says running,
   plus what each `bolus_end` says it gave); boluses and titrations marked;
2. drug given since the start of the record, programmed against delivered: the gap is
   the dose missed (`resumed` events say how much each stop cost);
3. reservoir, mL: the status frames' `reservoir_nl`, else rebuilt from `fill` events and
   the delivered volume; the low level and the empty floor when the log names them;
4. pressure, mbar: the status frames' `pressure_mbar` and the occlusion threshold over
   its baseline; occlusion alarms at the pressure that raised them;
5. alarms: one lane per alarm, a bar from raised to cleared in its priority's colour,
   sound silences, acknowledgements and other notable events.

Delivery stops are shaded on every panel, pump restarts drawn as dashed lines. A restart
starts the pump's clock again from zero: the runs are joined end to start, as if no time
passed while the pump was off (the log cannot tell how long that was).
"""
from __future__ import annotations

import argparse
import bisect
import json
import os
import sys
from typing import Any, Iterable, NamedTuple, Sequence

from tools.clinical import CLOCK_EPOCH
from tools.dashboard import BUCKET_MS, DAY_MS, HOUR_MS, NG_PER_MG, NG_PER_UG, NL_PER_ML, PRIORITIES

WIDTH_PX = 1200
HEIGHT_PX = 1500
DPI = 100
OCCLUSION_EXCESS_MBAR = 300  # docs/alarms.md: occlusion above this over the baseline
RATE_BUCKETS_MAX = 200  # delivered rate from status frames: at most this many steps
STROKES_PER_BUCKET = 40  # and at least this many strokes in each (a stroke is then 2.5 %)
WEEKDAY_OF_DAY_0 = 5  # 2000-01-01, day 0 of the pump's wall clock, was a Saturday
PRIORITY_COLOUR = {"high": "#d62728", "medium": "#ff7f0e", "low": "#c9a800"}
PROGRAMMED_COLOUR = "#1f77b4"
PAUSE_COLOUR = "#17becf"
BOLUS_COLOUR = "#9467bd"
DELIVERED_COLOUR = "#2ca02c"
STOP_COLOUR = "#d62728"
LABEL_BOX = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75}
# Notable events shown as marks on the alarm panel's last lane: (label, marker, colour).
EVENT_MARKS = {
    "refused": ("request refused", "x", "#7f7f7f"),
    "withheld": ("strokes withheld (24 h max)", "v", "#9467bd"),
    "strokes_unconfirmed": ("strokes unconfirmed", "1", "#8c564b"),
    "state_corrupt": ("stored state corrupt", "X", "#000000"),
    "auth_failed": ("authentication failed", "+", "#e377c2"),
    "refill": ("refill", "D", "#17becf"),
    "ack": ("alarms acknowledged", "^", "#000000"),
    "pause": ("paused (keep-open rate)", "<", "#1f77b4"),
    "resume": ("resumed by the clinician", ">", "#1f77b4"),
    "limits": ("hard limits set", "s", "#bcbd22"),
    "clock": ("wall clock set", "o", "#7f7f7f"),
    "alarm_settings": ("reservoir alarm levels set", "d", "#ff7f0e"),
}
# The events the panels above draw; anything else (a kind this tool does not know yet)
# is a grey dot on the event lane, so nothing in the log is silently dropped.
_DRAWN = {"power_up", "program", "limits", "clock", "fill", "state", "pause", "resume",
          "titration", "bolus_start", "bolus_end", "alarm", "alarms_restored", "resumed",
          "silence", "silence_end", "alarm_settings"} | set(EVENT_MARKS)


class PlotError(ValueError):
    """Nothing to plot, or input that is not a pump log."""


def up_ms(body: dict[str, Any]) -> int:
    return int(body.get("up_day", 0)) * DAY_MS + int(body.get("up_ms", 0))


# ---- reading ----------------------------------------------------------------------------

def read_jsonl(path: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(log records, status frames) of a file: JSON objects one a line (a log export, or
    `console watch --json` output), or the pump's own framed lines (its flash `log`
    file). Events count as records; results, summaries and the like are skipped."""
    records: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    with open(path, "rb") as f:
        data = f.read()
    for n, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(b"~"):
            body = _frame_body(line)
            if body is None:
                continue  # a torn or damaged frame: the pump's reader skips it too
        else:
            try:
                body = json.loads(line)
            except ValueError as e:
                raise PlotError("%s:%d: not JSON (%s)" % (path, n, e)) from None
        if not isinstance(body, dict):
            raise PlotError("%s:%d: a record must be a JSON object" % (path, n))
        kind = body.get("t")
        if kind == "status":
            statuses.append(body)
        elif kind in ("log", "event") or (kind is None and "ev" in body):
            records.append(body)
    return records, statuses


def _frame_body(line: bytes) -> dict[str, Any] | None:
    firmware = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware")
    if firmware not in sys.path:
        sys.path.append(firmware)  # appended: firmware module names must not shadow the host's
    from pump import wire

    frames = wire.Reader().feed(line + b"\n")
    return frames[0].body if frames else None


# ---- one time axis ----------------------------------------------------------------------

def _runs(bodies: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    # Split where the pump restarted: its time goes back, or a second power_up comes.
    runs: list[list[dict[str, Any]]] = [[]]
    last: int | None = None
    powered = False
    for b in bodies:
        t = up_ms(b)
        again = b.get("ev") == "power_up" and powered
        if runs[-1] and (t < (last or 0) or again):
            runs.append([])
            powered = False
        powered = powered or b.get("ev") == "power_up"
        runs[-1].append(b)
        last = t
    return [r for r in runs if r]


class Timeline(NamedTuple):
    items: list[tuple[int, dict[str, Any]]]  # (ms on the axis, body), in order
    restarts: list[int]  # where each run after the first begins
    wall: bool = False  # the axis is the pump's wall clock (ms since 2000-01-01)


def timeline(records: Sequence[dict[str, Any]], statuses: Sequence[dict[str, Any]] = ()) -> Timeline:
    """Records and status frames on one axis: the pump's wall clock when every record
    can be placed on it (tools/clinical.py), else the pump's time since the first run's
    power-up, each run after a restart joined to the end of the one before. Status
    frames are matched to the log's runs from the newest back (they are usually from
    the last session)."""
    from tools import clinical
    walls = clinical.place_on_wall_clock(list(records) + list(statuses), extrapolate=True)
    if records and walls and all(w is not None for w in walls):
        boot_of = clinical.boots(list(records))
        items = sorted(zip(walls, list(records) + list(statuses)), key=lambda tb: tb[0])
        restarts = [int(w) for w, b, boot in zip(walls, records, boot_of)
                    if b.get("ev") == "power_up" and boot > 0]
        return Timeline([(int(t), b) for t, b in items], restarts, True)
    rec = _runs(records)
    st = _runs(statuses)
    n = max(len(rec), len(st))
    items: list[tuple[int, dict[str, Any]]] = []
    restarts = []
    offset = 0
    for i in range(n):
        ri = i - (n - len(rec))
        si = i - (n - len(st))
        run = (rec[ri] if ri >= 0 else []) + (st[si] if si >= 0 else [])
        run.sort(key=up_ms)  # stable: at one time, events come before the status
        if i:
            restarts.append(offset)
        items += [(offset + up_ms(b), b) for b in run]
        offset += max(up_ms(b) for b in run)
    return Timeline(items, restarts)


# ---- piecewise-constant rates -----------------------------------------------------------

class Step(NamedTuple):
    t0: int
    t1: int
    value: float


def rate_at(steps: Sequence[Step], t: float) -> float:
    # The value of a sorted, non-overlapping step list at t (0 outside it).
    starts = [s.t0 for s in steps]
    i = bisect.bisect_right(starts, t) - 1
    return steps[i].value if i >= 0 and t < steps[i].t1 else 0.0


def add_steps(parts: Iterable[Sequence[Step]]) -> list[Step]:
    # The sum of step lists (each sorted, its own steps not overlapping) that may overlap
    # one another (the basal and a bolus on top of it).
    lists = [sorted(p) for p in parts if p]
    starts = [[s.t0 for s in p] for p in lists]
    cuts = sorted({t for p in lists for s in p for t in (s.t0, s.t1)})
    out: list[Step] = []
    for a, b in zip(cuts, cuts[1:]):
        mid = (a + b) / 2
        v = 0.0
        for p, st in zip(lists, starts):
            i = bisect.bisect_right(st, mid) - 1
            if i >= 0 and mid < p[i].t1:
                v += p[i].value
        if out and out[-1].t1 == a and out[-1].value == v:
            out[-1] = Step(out[-1].t0, b, v)
        else:
            out.append(Step(a, b, v))
    return out


def cumulative(steps: Sequence[Step]) -> tuple[list[int], list[float]]:
    # The integral of a rate per day over time, at each step's ends: ng for ng/day.
    ts: list[int] = []
    vs: list[float] = []
    total = 0.0
    for s in steps:
        if not ts or ts[-1] != s.t0:
            ts.append(s.t0)
            vs.append(total)
        total += s.value * (s.t1 - s.t0) / DAY_MS
        ts.append(s.t1)
        vs.append(total)
    return ts, vs


class Schedule:
    # The program's week (wire form: profiles of [start_min, rate_ng_per_day] steps and
    # a week of seven profile names, Monday first), as the pump reads it.
    def __init__(self, program: dict[str, Any]) -> None:
        profiles = program.get("profiles") or {}
        self.steps = {name: sorted((int(m) * 60000, int(r)) for m, r in steps)
                      for name, steps in profiles.items() if steps}
        week = program.get("week") or []
        first = next(iter(self.steps), None)
        self.week = [w if w in self.steps else first for w in (list(week) + [first] * 7)[:7]]
        if "dose_ug_per_day" in program and not self.steps:  # the short form
            self.steps = {"all": [(0, int(program["dose_ug_per_day"]) * NG_PER_UG)]}
            self.week = ["all"] * 7

    def flat(self) -> int | None:
        # The one rate of a continuous program, else None.
        rates = {r for steps in self.steps.values() for _, r in steps}
        return rates.pop() if len(rates) == 1 else (0 if not rates else None)

    def rate_and_change(self, wall_ms: int) -> tuple[int, int]:
        # (rate at the wall time, ms until the next step or midnight)
        day, ms = divmod(wall_ms, DAY_MS)
        weekday = (day + WEEKDAY_OF_DAY_0) % 7
        steps = self.steps.get(self.week[weekday] or "", [])
        rate = None
        for start, r in steps:
            if start > ms:
                return (rate if rate is not None else self._carried(weekday)), start - ms
            rate = r
        return (rate if rate is not None else self._carried(weekday)), DAY_MS - ms

    def _carried(self, weekday: int) -> int:
        # before a day's first step the previous day's last step still runs
        steps = self.steps.get(self.week[(weekday + 6) % 7] or "", [])
        return steps[-1][1] if steps else 0


# ---- what the log says ------------------------------------------------------------------

class Span(NamedTuple):
    t0: int
    t1: int
    label: str


class Model:
    """Everything the panels draw, in ms on the joined axis."""

    def __init__(self, tl: Timeline) -> None:
        self.restarts = tl.restarts
        self.wall = tl.wall
        self.t_start = tl.items[0][0] if tl.items else 0
        self.t_end = tl.items[-1][0] if tl.items else 0
        self.statuses = [(t, b) for t, b in tl.items if b.get("t") == "status"]
        self.events = [(t, b) for t, b in tl.items if b.get("t") != "status" and "ev" in b]
        self.drug = ""
        self.conc = 0
        self.programmed: list[Step] = []
        self.running: list[Step] = []
        self.stops: list[Span] = []
        self.pauses: list[Span] = []
        self.boluses: list[tuple[int, int, dict[str, Any], dict[str, Any] | None]] = []
        self.bolus_steps: list[Step] = []  # drug the boluses gave
        self.bolus_asked: list[Step] = []  # drug they were asked for
        self.prime_steps: list[Step] = []
        self.fills: list[tuple[int, int, int]] = []  # (t, volume nL, conc ug/mL)
        self.alarm_spans: dict[str, list[tuple[int, int, str, bool]]] = {}
        self.silences: list[Span] = []
        self.marks: list[tuple[int, str, dict[str, Any]]] = []
        self.titrations: list[tuple[int, dict[str, Any]]] = []
        self.program_changes: list[int] = []
        self.resumed: list[tuple[int, dict[str, Any]]] = []
        self.occlusions: list[tuple[int, int]] = []  # (t, pressure mbar) at a raise
        self.reservoir_points: list[tuple[int, int]] = []  # (t, nL) named by alarms
        self.low_nl: int | None = None
        self.floor_nl: int | None = None
        self._scan()

    # The settings that decide the programmed rate, replayed event by event.
    def _scan(self) -> None:
        schedule: Schedule | None = None
        keep_open = 0
        paused = False
        wall_ref: tuple[int, int] | None = None  # (t, wall ms then)
        state, state_since, reason = "idle", self.t_start, None
        bolus_open: dict[str, Any] | None = None
        bolus_t0 = 0
        silence_open: int | None = None
        pause_t0 = 0
        open_alarms: dict[str, tuple[int, str]] = {}
        changes: list[tuple[int, Schedule | None, bool, int, tuple[int, int] | None]] = []

        def note_change(t: int) -> None:
            changes.append((t, schedule, paused, keep_open, wall_ref))

        def set_state(t: int, new: str, why: Any) -> None:
            nonlocal state, state_since, reason
            if new == state and why == reason:
                return
            if state == "running" and t > state_since:
                self.running.append(Step(state_since, t, 1))
            if state == "stopped" and t > state_since:
                self.stops.append(Span(state_since, t, str(reason or "stopped")))
            state, state_since, reason = new, t, why

        for t, b in self.events:
            ev = b["ev"]
            if ev == "program":
                schedule = Schedule(b)
                keep_open = int(b.get("keep_open_nl_per_day") or 0)
                self.drug = str(b.get("drug") or self.drug)
                self.conc = self.conc or int(b.get("conc_ug_per_ml") or 0)
                self.program_changes.append(t)
                note_change(t)
            elif ev == "pause":
                if not paused:
                    pause_t0 = t
                paused = True
                keep_open = int(b.get("keep_open_nl_per_day", keep_open) or 0)
                note_change(t)
            elif ev == "resume":
                if paused:
                    self.pauses.append(Span(pause_t0, t, "paused"))
                paused = False
                note_change(t)
            elif ev == "clock":
                if not self.wall:  # (on the wall clock's axis, t is the wall clock)
                    wall_ref = (t, int(b.get("day", 0)) * DAY_MS + int(b.get("ms", 0)))
                note_change(t)
            elif ev == "fill":
                self.conc = int(b.get("conc_ug_per_ml") or self.conc)
                self.fills.append((t, int(b.get("volume_nl", 0)), self.conc))
                note_change(t)  # the keep-open rate in ng follows the concentration
            elif ev == "state":
                set_state(t, str(b.get("state")), b.get("reason"))
            elif ev == "bolus_start":
                bolus_open, bolus_t0 = b, t
            elif ev == "bolus_end":
                start = bolus_open if bolus_open is not None else {}
                self.boluses.append((bolus_t0 if bolus_open is not None else t, t, start, b))
                bolus_open = None
            elif ev == "titration":
                self.titrations.append((t, b))
            elif ev == "resumed":
                self.resumed.append((t, b))
            elif ev == "alarm":
                self._alarm(t, b, open_alarms)
            elif ev == "alarms_restored":
                for entry in b.get("alarms") or []:
                    code, prio = str(entry[0]), str(entry[1])
                    if code not in open_alarms:
                        open_alarms[code] = (t, prio)
            elif ev == "silence":
                silence_open = t
                self.silences.append(Span(t, t + int(b.get("minutes", 0)) * 60000, "silenced"))
            elif ev == "silence_end":
                if silence_open is not None and self.silences:
                    last = self.silences[-1]
                    self.silences[-1] = Span(last.t0, min(last.t1, t), last.label)
                silence_open = None
            elif ev == "alarm_settings":
                self.low_nl = b.get("low_reservoir_nl", self.low_nl)
                self.floor_nl = b.get("empty_floor_nl", self.floor_nl)
            if ev in EVENT_MARKS or ev not in _DRAWN:
                self.marks.append((t, ev, b))

        end = max(self.t_end, self.t_start + 1)
        if paused:
            self.pauses.append(Span(pause_t0, end, "paused"))
        if not any(b["ev"] == "state" for _, b in self.events):
            # no state events (status frames alone): the frames say when it ran
            for t, st in self.statuses:
                set_state(t, str(st.get("state")), st.get("stop_reason"))
        set_state(end, "end", None)
        if bolus_open is not None:
            self.boluses.append((bolus_t0, end, bolus_open, None))
        for code, (t0, prio) in open_alarms.items():
            self.alarm_spans.setdefault(code, []).append((t0, end, prio, True))
        self._alarms_from_status(end)
        self.programmed = self._programmed(changes, end) if changes else self._programmed_from_status(end)
        self._bolus_rates()

    def _alarm(self, t: int, b: dict[str, Any], open_alarms: dict[str, tuple[int, str]]) -> None:
        code = str(b.get("code"))
        if b.get("state") == "raised":
            if code not in open_alarms:
                open_alarms[code] = (t, str(b.get("priority", "low")))
            if code == "occlusion" and "excess_mbar" in b:
                self.occlusions.append((t, int(b.get("baseline_mbar", 0)) + int(b["excess_mbar"])))
        elif code in open_alarms:
            t0, prio = open_alarms.pop(code)
            self.alarm_spans.setdefault(code, []).append((t0, t, prio, False))
        if "reservoir_nl" in b:
            self.reservoir_points.append((t, int(b["reservoir_nl"])))
        if "low_nl" in b:
            self.low_nl = int(b["low_nl"])

    def _alarms_from_status(self, end: int) -> None:
        # Alarms the log never mentions (rotated away, or no log at all): from the
        # status frames' `alarms`, present from the first frame naming them to the first
        # one without them.
        open_: dict[str, tuple[int, str]] = {}
        for t, s in self.statuses:
            active = {str(a[0]): str(a[1]) for a in s.get("alarms") or []}
            for code, prio in active.items():
                if code not in self.alarm_spans and code not in open_:
                    open_[code] = (t, prio)
            for code in [c for c in open_ if c not in active]:
                t0, prio = open_.pop(code)
                self.alarm_spans.setdefault(code, []).append((t0, t, prio, False))
        for code, (t0, prio) in open_.items():
            self.alarm_spans.setdefault(code, []).append((t0, end, prio, True))

    def _programmed(self, changes: list[tuple[int, Schedule | None, bool, int, tuple[int, int] | None]],
                    end: int) -> list[Step]:
        # The rate the program calls for, step by step, between settings changes.
        out: list[Step] = []
        conc_at = [(t, c) for t, _, c in self.fills]
        for i, (t0, sched, paused, keep_open, wall_ref) in enumerate(changes):
            t1 = changes[i + 1][0] if i + 1 < len(changes) else end
            if t1 <= t0 or sched is None:
                continue
            if paused:
                conc = self._conc_at(conc_at, t0)
                out.append(Step(t0, t1, keep_open * conc / 1000))
                continue
            flat = sched.flat()
            if flat is not None:
                out.append(Step(t0, t1, flat))
                continue
            # a flex week: walk its steps on the wall clock (Monday 00:00 at power-up
            # when the log never set the clock)
            ref_t, ref_wall = wall_ref if wall_ref is not None else ((0, 0) if self.wall else (0, 2 * DAY_MS))
            t = t0
            while t < t1:
                rate, left = sched.rate_and_change(ref_wall + t - ref_t)
                t_next = min(t + left, t1)
                out.append(Step(t, t_next, rate))
                t = t_next
        return add_steps([out]) if out else []

    def _programmed_from_status(self, end: int) -> list[Step]:
        # Without the program's events: the basal rate the frames report while running,
        # held over a stop (the pump reports 0 then, but the program still calls for it).
        out: list[Step] = []
        held = 0
        for i, (t, s) in enumerate(self.statuses):
            if s.get("state") == "running":
                held = int(s.get("rate_ng_per_day", 0))
            elif s.get("state") != "stopped":
                held = 0
            t1 = self.statuses[i + 1][0] if i + 1 < len(self.statuses) else end
            if t1 > t:
                out.append(Step(t, t1, held))
        return add_steps([out]) if out else []

    def _conc_at(self, conc_at: list[tuple[int, int]], t: int) -> int:
        conc = self.conc
        for tf, c in conc_at:
            if tf <= t:
                conc = c
        return conc

    def _bolus_rates(self) -> None:
        for t0, t1, start, end in self.boluses:
            if t1 <= t0:
                continue
            kind = start.get("kind") or (end or {}).get("kind")
            if kind == "prime":
                nl = int(start.get("volume_nl", 0))
                self.prime_steps.append(Step(t0, t1, nl * DAY_MS / (t1 - t0)))
                continue
            dur = int(start.get("duration_min", 0)) * 60000 or (t1 - t0)
            asked = int(start.get("requested_ng", 0))
            ng = (end or {}).get("delivered_ng")
            if ng is None:  # still running at the end of the record: as requested, so far
                ng = asked * min(t1 - t0, dur) // max(dur, 1)
            if (end or {}).get("end") == "cancelled":
                asked = int(ng)  # the clinician chose to give no more
            self.bolus_steps.append(Step(t0, t1, int(ng) * DAY_MS / (t1 - t0)))
            self.bolus_asked.append(Step(t0, t0 + dur, asked * DAY_MS / dur))

    # ---- delivered ----

    def delivered_rebuilt(self) -> list[Step]:
        # The log's account: the programmed basal while running, plus the boluses.
        basal = [Step(max(p.t0, r.t0), min(p.t1, r.t1), p.value)
                 for p in self.programmed for r in self.running if min(p.t1, r.t1) > max(p.t0, r.t0)]
        basal.sort()
        zero = [Step(self.t_start, max(self.t_end, self.t_start + 1), 0)]  # 0 where nothing runs
        return add_steps([zero, basal, self.bolus_steps])

    def delivered_from_status(self) -> tuple[list[Step], list[int], list[float]]:
        # (rate steps over buckets, times, cumulative ng) from `delivered_ng`, which
        # counts from the last fill: a drop means a fill, after which it counts anew.
        intervals: list[tuple[int, int, int]] = []
        times: list[int] = []
        total: list[float] = []
        prev: tuple[int, dict[str, Any]] | None = None
        acc = 0.0
        restarts = set(self.restarts)
        for t, s in self.statuses:
            if "delivered_ng" not in s:
                continue
            if prev is not None and any(prev[0] < r <= t for r in restarts):
                prev = None  # across a restart the pump's count jumps by its lease: not drug given
            if prev is not None:
                d = s["delivered_ng"] - prev[1]["delivered_ng"]
                d = s["delivered_ng"] if d < 0 else d
                if t > prev[0]:
                    intervals.append((prev[0], t, d))
                acc += d
            times.append(t)
            total.append(acc)
            prev = (t, s)
        if len(times) < 2 or not intervals:
            return [], [], []
        if not intervals:
            return [], times, total
        periods = sorted(t1 - t0 for t0, t1, _ in intervals)
        period = periods[len(periods) // 2]
        first, last = intervals[0][0], intervals[-1][1]
        # a bucket long enough that whole strokes do not make the mean jitter: at least
        # STROKES_PER_BUCKET of the usual basal rate
        shortest = period
        stroke = self._ng_per_stroke()
        rates = sorted(int(s.get("rate_ng_per_day", 0)) for _, s in self.statuses if s.get("rate_ng_per_day"))
        if stroke and rates:
            shortest = max(period, STROKES_PER_BUCKET * stroke * DAY_MS // rates[len(rates) // 2])
        size = next((b for b in BUCKET_MS if b >= shortest and (last - first) / b <= RATE_BUCKETS_MAX),
                    BUCKET_MS[-1])
        sums: dict[int, list[int]] = {}
        for t0, t1, d in intervals:
            k = (t1 - 1) // size
            acc_k = sums.setdefault(k, [0, 0, t1, t0])
            acc_k[0] += t1 - t0
            acc_k[1] += d
            acc_k[3] = min(acc_k[3], t0)
        steps = [Step(max(k * size, v[3]), min((k + 1) * size, last), v[1] * DAY_MS / v[0])
                 for k, v in sorted(sums.items())]
        return steps, times, total

    def _ng_per_stroke(self) -> int:
        # The drug in one stroke, as the newest frame with strokes counted tells it.
        for _, s in reversed(self.statuses):
            if s.get("strokes_confirmed") and s.get("delivered_ng"):
                return int(s["delivered_ng"]) // int(s["strokes_confirmed"])
        return 0


# ---- drawing ----------------------------------------------------------------------------

def render_png(records: Sequence[dict[str, Any]], path: str, status: Sequence[dict[str, Any]] | None = None,
               width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX, title: str | None = None) -> str:
    """Draw the log `records` (event bodies with `ev`, `up_day`, `up_ms`) and the status
    frames `status` (optional; status dicts among `records` count too) as a PNG of
    width_px x height_px at `path`, readable by its owner only (it is health data, like
    the log export). Returns path. PlotError when there is nothing to plot. The PNG
    carries, in a text chunk `pump-plot`, what it drew where (panels, their scales, the
    lines and labels): tests and tools read it back."""
    import io
    from tools.keystore import write_private
    from PIL import Image, PngImagePlugin
    model = _model(records, status)
    fig, meta = _figure(model, width_px, height_px, title)
    # drawn once (for the metadata's boxes); the pixels of that drawing are the PNG
    canvas = fig.canvas
    w, h = canvas.get_width_height()
    img = Image.frombuffer("RGBA", (w, h), bytes(canvas.buffer_rgba()), "raw", "RGBA", 0, 1)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "python -m tools.plot")
    info.add_text("pump-plot", json.dumps(meta, sort_keys=True))
    out = io.BytesIO()
    img.save(out, format="png", pnginfo=info)
    write_private(path, out.getvalue())
    return path


def _model(records: Sequence[dict[str, Any]], status: Sequence[dict[str, Any]] | None) -> "Model":
    recs = [r for r in records if isinstance(r, dict) and "ev" in r and r.get("t") != "status"]
    stats = [s for s in (status or []) if isinstance(s, dict)]
    stats += [r for r in records if isinstance(r, dict) and r.get("t") == "status"]
    if not recs and not stats:
        raise PlotError("nothing to plot: the log has no records (and there are no status frames)")
    return Model(timeline(recs, stats))


def render_svg(records: Sequence[dict[str, Any]], status: Sequence[dict[str, Any]] | None = None,
               width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX, title: str | None = None) -> str:
    # The same picture as SVG text, for the visit report (tools/report.py).
    import io
    model = _model(records, status)
    fig, _ = _figure(model, width_px, height_px, title, measure=False)
    out = io.StringIO()
    fig.savefig(out, format="svg")
    return out.getvalue()


def _figure(m: "Model", width_px: int, height_px: int, title: str | None,
            measure: bool = True) -> tuple[Any, dict[str, Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lanes = _alarm_lanes(m)
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(6, 1, sharex=True, gridspec_kw={
        "height_ratios": [3, 1.4, 2.2, 1.8, 1.6, max(1.4, 0.28 * len(lanes) + 0.5)]})
    span = max(m.t_end - m.t_start, HOUR_MS)
    if m.wall:
        import matplotlib.dates as mdates
        epoch = mdates.date2num(CLOCK_EPOCH)

        def x(t: float) -> float:
            return epoch + t / DAY_MS
    else:
        unit_ms = HOUR_MS if span <= 2 * DAY_MS else DAY_MS

        def x(t: float) -> float:
            return t / unit_ms

    _dose_panel(axes[0], m, x)
    _bolus_panel(axes[1], m, x)
    _cumulative_panel(axes[2], m, x)
    _reservoir_panel(axes[3], m, x)
    _pressure_panel(axes[4], m, x)
    _alarm_panel(axes[5], m, x, lanes)
    for ax in axes[:5]:
        for s in m.stops:
            ax.axvspan(x(s.t0), x(s.t1), color=STOP_COLOUR, alpha=0.08, lw=0)
        for s in m.pauses:
            ax.axvspan(x(s.t0), x(s.t1), color=PAUSE_COLOUR, alpha=0.10, lw=0)
        ax.grid(True, alpha=0.3)
    for ax in axes:
        for t in m.restarts:
            ax.axvline(x(t), color="#555555", ls="--", lw=1)
    top = axes[0].get_ylim()[1]
    for t in m.restarts:
        axes[0].annotate("restart", (x(t), top), xytext=(3, -2), textcoords="offset points", fontsize=7,
                         color="#555555", va="top", rotation=90)
    pad = span * 0.01
    axes[-1].set_xlim(x(m.t_start - pad), x(m.t_start + span + pad))
    if m.wall:
        import matplotlib.dates as mdates
        locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
        axes[-1].xaxis.set_major_locator(locator)
        axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        axes[-1].set_xlabel("the pump's wall clock" + (
            " (after a restart it restarts from the clock it stored: time without power is missing)"
            if m.restarts else ""))
    else:
        axes[-1].set_xlabel("pump time since power-up, %s (not every record can be placed on its wall clock)%s" % (
            "h" if span <= 2 * DAY_MS else "days",
            "; restarts joined: time without power is not shown" if m.restarts else ""))
    fig.suptitle(title or _title(m), fontsize=13)
    if not measure:
        return fig, {}
    fig.canvas.draw()
    return fig, _metadata(fig, axes)


PANEL_NAMES = ("dose", "boluses", "drug", "reservoir", "pressure", "alarms")


def _metadata(fig: Any, axes: Any) -> dict[str, Any]:
    # What the picture holds, in pixels from its top left: each panel's box, its y
    # scale, its lines (label, colour, point count) and every label's box.
    height = fig.bbox.height
    renderer = fig.canvas.get_renderer()

    def box(bb: Any) -> list[int]:
        return [int(bb.x0), int(height - bb.y1), int(bb.x1), int(height - bb.y0)]

    panels = {}
    texts = []
    for name, ax in zip(PANEL_NAMES, axes):
        lines = [{"label": str(ln.get_label()), "colour": _hex(ln.get_color()), "points": len(ln.get_xdata())}
                 for ln in ax.get_lines() if not str(ln.get_label()).startswith("_")]
        panels[name] = {"box": box(ax.get_window_extent()), "ylim": [float(v) for v in ax.get_ylim()],
                        "lines": lines}
        for t in ax.texts:
            if t.get_text() and t.get_visible():
                texts.append({"panel": name, "text": t.get_text(), "box": box(t.get_window_extent(renderer))})
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    return {"panels": panels, "labels": texts, "title": title}


def _hex(colour: Any) -> str:
    from matplotlib.colors import to_hex
    try:
        return str(to_hex(colour))
    except ValueError:
        return str(colour)


def _title(m: "Model") -> str:
    from tools import clinical
    what = m.drug or "pump"
    if m.conc:
        what += " %d µg/mL" % m.conc
    if m.wall:
        when = "%s to %s" % (clinical.wall_text(m.t_start), clinical.wall_text(m.t_end))
    else:
        when = "%.1f days" % ((m.t_end - m.t_start) / DAY_MS)
    parts = ["%s: %s" % (what, when), _count(len(m.events), "log record")]
    if m.statuses:
        parts.append(_count(len(m.statuses), "status frame"))
    if m.restarts:
        parts.append(_count(len(m.restarts), "restart"))
    return ", ".join(parts)


def _count(n: int, noun: str) -> str:
    return "%d %s%s" % (n, noun, "" if n == 1 else "s")


def _stairs(ax: Any, steps: Sequence[Step], x: Any, scale: float, **kw: Any) -> None:
    # A step list as a line that holds each value over its span (gaps drawn as gaps).
    xs: list[float] = []
    ys: list[float] = []
    for s in steps:
        if xs and xs[-1] != x(s.t0):
            xs.append(float("nan"))
            ys.append(float("nan"))
        xs += [x(s.t0), x(s.t1)]
        ys += [s.value / scale, s.value / scale]
    if xs:
        ax.plot(xs, ys, **kw)


def _dose_panel(ax: Any, m: Model, x: Any) -> None:
    # The basal alone, on a scale the basal sets: boluses have their own panel below, so a
    # spike never flattens the basal.
    ax.set_title("Basal dose rate: programmed vs delivered (boluses below)", loc="left", fontsize=10)
    ax.set_ylabel("µg/day")
    steps, _, _ = m.delivered_from_status()
    steps = _minus_boluses(steps, m.bolus_steps)
    # a schedule that changes within the delivered rate's buckets is compared by its
    # mean over the same buckets; the schedule itself is then drawn faint
    means = bool(steps) and any(p.t1 - p.t0 < steps[0].t1 - steps[0].t0 for p in m.programmed)
    _stairs(ax, m.programmed, x, NG_PER_UG, color=PROGRAMMED_COLOUR, lw=1 if means else 2,
            alpha=0.35 if means else 1, label="programmed basal")
    if steps:
        per = _bucket_name(steps)
        _stairs(ax, steps, x, NG_PER_UG, color=DELIVERED_COLOUR, lw=1.2,
                label="delivered basal (status frames less boluses, mean per %s)" % per)
        if means:
            ct, cv = cumulative(m.programmed)
            mean_steps = [Step(s.t0, s.t1, (_interp(ct, cv, s.t1) - _interp(ct, cv, s.t0)) * DAY_MS / (s.t1 - s.t0))
                          for s in steps if s.t1 > s.t0]
            _stairs(ax, mean_steps, x, NG_PER_UG, color=PROGRAMMED_COLOUR, lw=1.2, ls="--",
                    label="programmed, mean per %s" % per)
    else:
        basal = _minus_boluses(m.delivered_rebuilt(), m.bolus_steps)
        _stairs(ax, basal, x, NG_PER_UG, color=DELIVERED_COLOUR, lw=1.2, ls="-",
                label="delivered basal (from the log: the programmed basal while running)")
    peak = max([p.value for p in m.programmed] + [s.value for s in steps] + [0.0]) / NG_PER_UG
    ax.set_ylim(bottom=0, top=max(peak, 1) * 1.25)  # room for the marks
    top = ax.get_ylim()[1]
    for i, (t, b) in enumerate(m.titrations):
        what = "%+d%%" % b["percent"] if b.get("percent") is not None else "%s µg/day" % _ug(int(b.get("daily_ng") or 0))
        ax.plot([x(t)], [top * 0.95], marker="D", color="#e377c2", ms=6, ls="none")
        ax.annotate("titration " + what, (x(t), top * 0.95), xytext=(5, -3 - 9 * (i % 2)), textcoords="offset points",
                    fontsize=7, va="top")
    for t in m.program_changes:
        ax.axvline(x(t), color=PROGRAMMED_COLOUR, lw=0.8, ls=":")
    _legend(ax, m, loc="lower left")


def _minus_boluses(steps: Sequence[Step], boluses: Sequence[Step]) -> list[Step]:
    # A delivered rate less what the boluses gave over each step (never below 0).
    if not steps or not boluses:
        return list(steps)
    bt, bv = cumulative(add_steps([boluses]))
    out = []
    for s in steps:
        given = (_interp(bt, bv, s.t1) - _interp(bt, bv, s.t0)) * DAY_MS / (s.t1 - s.t0) if s.t1 > s.t0 else 0
        out.append(Step(s.t0, s.t1, max(s.value - given, 0.0)))
    return out


def _bolus_panel(ax: Any, m: Model, x: Any) -> None:
    # Each bolus as a bar of what it gave (µg) at its time, on a scale of its own;
    # priming (no drug) as a marker. Labels stagger so that close ones do not overlap.
    ax.set_title("Boluses: drug given (outline: asked for)", loc="left", fontsize=10)
    ax.set_ylabel("µg")
    width = max((m.t_end - m.t_start) / 150, 60000)
    tops = [0.0]
    shown = 0
    for t0, t1, start, end in m.boluses:
        kind = start.get("kind") or (end or {}).get("kind") or "bolus"
        ax.axvspan(x(t0), x(max(t1, t0 + 1)), color=BOLUS_COLOUR, alpha=0.08, lw=0)
        if kind in ("prime", "bridge"):
            label = "priming" if kind == "prime" else "bridge"
            ax.plot([x(t0)], [0], marker="^", color="#7f7f7f", ms=7, ls="none")
            ax.annotate(label, (x(t0), 0), xytext=(3, 4 + 10 * (shown % 3)), textcoords="offset points",
                        fontsize=7, color="#555555")
            shown += 1
            continue
        asked = int(start.get("requested_ng") or (end or {}).get("requested_ng") or 0) / NG_PER_UG
        given = (end or {}).get("delivered_ng")
        given_ug = int(given) / NG_PER_UG if given is not None else None
        ax.bar([x(t0)], [asked], width=x(t0 + width) - x(t0), color="none", edgecolor=BOLUS_COLOUR, lw=1,
               align="edge")
        if given_ug is not None:
            ax.bar([x(t0)], [given_ug], width=x(t0 + width) - x(t0), color=BOLUS_COLOUR, alpha=0.8, align="edge")
        tops.append(max(asked, given_ug or 0))
        text = "%s %s µg" % (kind, _ug(int(given)) if given is not None else "%s asked" % _ug(int(asked * NG_PER_UG)))
        ax.annotate(text, (x(t0), max(asked, given_ug or 0)), xytext=(2, 2 + 10 * (shown % 3)),
                    textcoords="offset points", fontsize=7, color="#5b3a8c")
        shown += 1
    ax.set_ylim(bottom=0, top=max(tops) * 1.6 + 1)
    if not m.boluses:
        _no_data(ax, "no boluses")


def _bucket_name(steps: Sequence[Step]) -> str:
    widths = sorted(s.t1 - s.t0 for s in steps)
    w = widths[-1] if widths else 0
    for b in BUCKET_MS:
        if b >= w:
            w = b
            break
    if w % DAY_MS == 0:
        return "%d d" % (w // DAY_MS) if w != DAY_MS else "day"
    if w % HOUR_MS == 0:
        return "%d h" % (w // HOUR_MS) if w != HOUR_MS else "hour"
    return "%d min" % (w // 60000)


def _legend(ax: Any, m: Model, loc: str = "lower left") -> None:
    from matplotlib.patches import Patch

    handles, labels = ax.get_legend_handles_labels()
    if m.stops:
        handles.append(Patch(color=STOP_COLOUR, alpha=0.15))
        labels.append("delivery stopped")
    if m.pauses:
        handles.append(Patch(color=PAUSE_COLOUR, alpha=0.2))
        labels.append("paused (keep-open rate)")
    if handles:
        ax.legend(handles, labels, loc=loc, fontsize=8, framealpha=0.85)


def _ug(ng: int) -> str:
    return ("%.3f" % (ng / NG_PER_UG)).rstrip("0").rstrip(".")


def _cumulative_panel(ax: Any, m: Model, x: Any) -> None:
    pt, pv = cumulative(add_steps([m.programmed, m.bolus_asked]))
    _, st_t, st_v = m.delivered_from_status()
    rebuilt = m.delivered_rebuilt()
    if st_t:
        # status totals start where the log's own account stood at the first frame
        rt, rv = cumulative(rebuilt)
        base = _interp(rt, rv, st_t[0]) if rt else 0.0
        dt, dv = st_t, [base + v for v in st_v]
        label = "delivered (status frames)"
    else:
        dt, dv = cumulative(rebuilt)
        label = "delivered (from the log)"
    peak = max(pv + dv + [0.0])
    scale, unit = (NG_PER_MG, "mg") if peak >= 10 * NG_PER_MG else (NG_PER_UG, "µg")
    ax.set_title("Drug given since the start of the record", loc="left", fontsize=10)
    ax.set_ylabel(unit)
    if pt:
        ax.plot([x(t) for t in pt], [v / scale for v in pv], color=PROGRAMMED_COLOUR, lw=2,
                label="programmed (basal + boluses as asked for)")
    if dt:
        ax.plot([x(t) for t in dt], [v / scale for v in dv], color=DELIVERED_COLOUR, lw=1.5, label=label)
    for t, missed, stops in _missed_groups(m):
        y = _interp(dt, dv, t) / scale if dt else 0
        text = "missed %s µg" % _ug(missed) + (" in %d stops" % stops if stops > 1 else "")
        ax.annotate(text, (x(t), y), xytext=(4, 8), textcoords="offset points", fontsize=7, color=STOP_COLOUR,
                    bbox=LABEL_BOX)
    ax.set_ylim(bottom=0)
    _legend(ax, m, loc="upper left")


def _missed_groups(m: Model) -> list[tuple[int, int, int]]:
    # (time, ng, stops): the `resumed` events' missed drug, stops closer than 3 % of the
    # plot's span taken together so that their labels do not pile up.
    near = max(m.t_end - m.t_start, HOUR_MS) * 3 // 100
    groups: list[list[int]] = []
    for t, b in m.resumed:
        missed = b.get("missed_ng")
        if missed is None or missed < 0:  # -1: no program, nothing was missed
            continue
        if groups and t - groups[-1][0] <= near:
            groups[-1][1] += int(missed)
            groups[-1][2] += 1
        else:
            groups.append([t, int(missed), 1])
    return [(g[0], g[1], g[2]) for g in groups]


def _interp(ts: Sequence[float], vs: Sequence[float], t: float) -> float:
    if not ts:
        return 0.0
    i = bisect.bisect_right(list(ts), t)
    if i == 0:
        return vs[0]
    if i >= len(ts):
        return vs[-1]
    t0, t1 = ts[i - 1], ts[i]
    return vs[i - 1] + (vs[i] - vs[i - 1]) * ((t - t0) / (t1 - t0) if t1 > t0 else 0)


def _reservoir_panel(ax: Any, m: Model, x: Any) -> None:
    ax.set_title("Reservoir", loc="left", fontsize=10)
    ax.set_ylabel("mL")
    points = [(t, s["reservoir_nl"]) for t, s in m.statuses if "reservoir_nl" in s]
    if len(points) >= 2:
        ax.plot([x(t) for t, _ in points], [v / NL_PER_ML for _, v in points], color="#1f77b4", lw=1.5,
                label="volume left (status frames)")
    elif m.fills:
        ts, vs = _reservoir_rebuilt(m)
        ax.plot([x(t) for t in ts], [v / NL_PER_ML for v in vs], color="#1f77b4", lw=1.5, ls="--",
                label="volume left (from the log: fills less delivery)")
    for t, nl, conc in m.fills:
        ax.plot([x(t)], [nl / NL_PER_ML], marker="o", color="#17becf", ms=6, ls="none")
        ax.annotate("fill %s mL, %d µg/mL" % (_ml(nl), conc), (x(t), nl / NL_PER_ML), xytext=(4, -10),
                    textcoords="offset points", fontsize=7)
    if len(points) == 1:
        (t, v), = points
        ax.plot([x(t)], [v / NL_PER_ML], marker="o", color="#1f77b4", ms=7, ls="none",
                label="volume left now (%s mL, the pump's count)" % _ml(v))
    if m.reservoir_points:
        ax.plot([x(t) for t, _ in m.reservoir_points], [v / NL_PER_ML for _, v in m.reservoir_points],
                marker="s", color=PRIORITY_COLOUR["medium"], ms=5, ls="none", label="reservoir alarm")
    if m.low_nl:
        ax.axhline(m.low_nl / NL_PER_ML, color=PRIORITY_COLOUR["medium"], ls=":", lw=1.2,
                   label="low level %s mL" % _ml(m.low_nl))
    if m.floor_nl:
        ax.axhline(m.floor_nl / NL_PER_ML, color=PRIORITY_COLOUR["high"], ls=":", lw=1.2,
                   label="empty floor %s mL" % _ml(m.floor_nl))
    if not (points or m.fills or m.reservoir_points):  # (a single status frame draws its point)
        _no_data(ax, "no reservoir figures in the log")
    ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 0.1) * 1.1)
    _legend(ax, m, loc="best")


def _ml(nl: int) -> str:
    return ("%.6f" % (nl / NL_PER_ML)).rstrip("0").rstrip(".")


def _reservoir_rebuilt(m: Model) -> tuple[list[int], list[float]]:
    # Each fill sets the volume; delivered drug (ng) becomes volume at the fill's
    # concentration, priming fluid counts as its own volume.
    ts, vs = cumulative(m.delivered_rebuilt())
    prime_t, prime_v = cumulative(m.prime_steps)
    times = sorted(set(ts) | set(prime_t) | {t for t, _, _ in m.fills} | {m.t_end})
    out_t: list[int] = []
    out_v: list[float] = []
    for t in times:
        fill = None
        for f in m.fills:
            if f[0] <= t:
                fill = f
        if fill is None:
            continue
        tf, nl, conc = fill
        used_ng = _interp(ts, vs, t) - _interp(ts, vs, tf)
        used_nl = used_ng * 1000 / conc if conc else 0.0
        used_nl += _interp(prime_t, prime_v, t) - _interp(prime_t, prime_v, tf)
        if out_t and t == tf:  # the fill itself: the level jumps
            out_t.append(t)
            out_v.append(out_v[-1])
        out_t.append(t)
        out_v.append(max(nl - used_nl, 0.0))
    return out_t, out_v


def _pressure_panel(ax: Any, m: Model, x: Any) -> None:
    ax.set_title("Downstream pressure", loc="left", fontsize=10)
    ax.set_ylabel("mbar")
    points = [(t, s) for t, s in m.statuses if "pressure_mbar" in s]
    if points:
        ax.plot([x(t) for t, _ in points], [s["pressure_mbar"] for _, s in points], color="#1f77b4", lw=1.2,
                label="pressure (median of 3 readings)")
        limit = [(t, s["pressure_mbar"] - s["pressure_excess_mbar"] + OCCLUSION_EXCESS_MBAR)
                 for t, s in points if "pressure_excess_mbar" in s]
        if limit:
            ax.plot([x(t) for t, _ in limit], [v for _, v in limit], color=PRIORITY_COLOUR["high"], ls=":",
                    lw=1.2, label="occlusion threshold (baseline + %d mbar)" % OCCLUSION_EXCESS_MBAR)
    if m.occlusions:
        ax.plot([x(t) for t, _ in m.occlusions], [p for _, p in m.occlusions], marker="^", ms=8,
                color=PRIORITY_COLOUR["high"], ls="none", label="occlusion raised")
    if not points:
        _no_data(ax, "no pressure readings: status frames carry them (give --status)"
                 + (";\nthe marks are the log's occlusion alarms" if m.occlusions else ""))
    low, high = ax.get_ylim()
    ax.set_ylim(min(0, low), high * 1.15)
    _legend(ax, m, loc="best")


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="#777777")


def _alarm_lanes(m: Model) -> list[str]:
    rank = {p: i for i, p in enumerate(PRIORITIES)}

    def key(code: str) -> tuple[int, int]:
        spans = m.alarm_spans[code]
        return rank.get(spans[0][2], 3), spans[0][0]

    lanes = sorted(m.alarm_spans, key=key)
    if m.silences:
        lanes.append("sound silenced")
    if m.marks:
        lanes.append("events")
    return lanes


def _alarm_panel(ax: Any, m: Model, x: Any, lanes: list[str]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ax.set_title("Alarms (bar: raised to cleared; open end: still active)", loc="left", fontsize=10)
    for i, code in enumerate(lanes):
        y = len(lanes) - 1 - i
        for t0, t1, prio, open_end in m.alarm_spans.get(code, []):
            colour = PRIORITY_COLOUR.get(prio, "#7f7f7f")
            ax.broken_barh([(x(t0), max(x(t1) - x(t0), 0))], (y - 0.35, 0.7), color=colour, alpha=0.85)
            ax.plot([x(t0)], [y], marker="|", ms=12, mew=2, color=colour)
            if open_end:
                ax.plot([x(t1)], [y], marker=">", ms=6, color=colour)
        if code == "sound silenced":
            for s in m.silences:
                ax.broken_barh([(x(s.t0), x(s.t1) - x(s.t0))], (y - 0.3, 0.6), color="#7f7f7f", alpha=0.6)
        if code == "events":
            for t, ev, _ in m.marks:
                _, marker, colour = EVENT_MARKS.get(ev, (ev, ".", "#7f7f7f"))
                ax.plot([x(t)], [y], marker=marker, color=colour, ms=7, ls="none")
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels(list(reversed(lanes)), fontsize=8)
    ax.set_ylim(-0.7, max(len(lanes), 1) - 0.3)
    ax.grid(True, axis="x", alpha=0.3)
    handles: list[Any] = [Patch(color=PRIORITY_COLOUR[p], label="%s priority" % p) for p in PRIORITIES
                          if any(s[2] == p for spans in m.alarm_spans.values() for s in spans)]
    seen = []
    for _, ev, _ in m.marks:
        if ev not in seen:
            seen.append(ev)
    for ev in seen:
        label, marker, colour = EVENT_MARKS.get(ev, (ev, ".", "#7f7f7f"))
        handles.append(Line2D([], [], marker=marker, color=colour, ls="none", label=label))
    if not lanes:
        _no_data(ax, "no alarms")
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, framealpha=0.85)


# ---- command line -----------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.plot",
                                 description="Draw a pump's log (and status frames) as a PNG.")
    ap.add_argument("log", metavar="LOG.jsonl",
                    help="log records, one JSON object a line (console `log export`, or "
                         "`console watch --json` output, which carries status frames too)")
    ap.add_argument("-o", "--output", metavar="PNG", help="the picture to write (default: LOG.png)")
    ap.add_argument("--status", metavar="FILE", help="status frames, one JSON object a line")
    ap.add_argument("--title", help="the picture's title (default: drug, days, records)")
    ap.add_argument("--size", metavar="WxH", default="%dx%d" % (WIDTH_PX, HEIGHT_PX),
                    help="picture size in pixels (default %(default)s)")
    opts = ap.parse_args(argv)
    try:
        w, h = (int(v) for v in opts.size.lower().split("x"))
        if not (200 <= w <= 10000 and 200 <= h <= 10000):
            raise ValueError
    except ValueError:
        ap.error("--size: give WIDTHxHEIGHT in pixels, 200..10000 each")
    out = opts.output or os.path.splitext(opts.log)[0] + ".png"
    try:
        records, statuses = read_jsonl(opts.log)
        if opts.status:
            statuses += read_jsonl(opts.status)[1]
        if not records and not statuses:
            raise PlotError("%s: no log records in it (an empty log?)" % opts.log)
        render_png(records, out, statuses, w, h, opts.title)
    except (OSError, PlotError) as e:
        print("plot: %s" % e, file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
