"""The pump's integers as a clinician reads them: µg and mg, mL, h:mm, dates on the wall clock.

The pump counts in ng, nL and ms, and its time in days and ms since power-up; a person
reads a dose in µg, a volume in mL, a duration in hours and minutes and a moment as a date
and time. Everything the console, the dashboard, the plot and the visit report show a
person goes through here; the exact integers stay in --json output and in exports.

Rules this file keeps:
1. Exact: a figure is the pump's integer with its decimal point moved, never a float, so
   no rounding changes a digit of a dose.
2. Time on the wall clock when the pump knew it: a record's place on the wall clock comes
   from the pump's own anchors (the `wall` of power_up, `clock` events, the status's
   `clock`), never from this computer's clock. Without an anchor the pump's time since
   power-up is shown, and says so.
"""
from __future__ import annotations

import datetime
import json
import re
import sys
from typing import Any, Iterable, Sequence

DAY_MS = 86400000
HOUR_MS = 3600000
MINUTE_MS = 60000
NL_PER_ML = 1000000
NG_PER_UG = 1000
NG_PER_MG = 1000000
CLOCK_EPOCH = datetime.datetime(2000, 1, 1)  # day 0 of the pump's wall clock
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _micro() -> str:
    # "µ" where the output can carry it (any UTF-8 terminal), "u" otherwise
    try:
        "µ".encode(getattr(sys.stdout, "encoding", None) or "ascii")
    except (LookupError, UnicodeEncodeError):
        return "u"
    return "µ"


MICRO = _micro()
UG = MICRO + "g"
UL = MICRO + "L"


def decimal(n: int, places: int) -> str:
    # n / 10**places written out exactly, trailing zeros dropped: decimal(1234500, 6) ->
    # "1.2345".
    sign = "-" if n < 0 else ""
    whole, frac = divmod(abs(int(n)), 10 ** places)
    digits = str(frac).rjust(places, "0").rstrip("0") if places else ""
    return sign + str(whole) + ("." + digits if digits else "")


def ug(ng: Any) -> str:
    # "12.5" (µg, exact; a Fraction is shown to the ng with a ~ when not exact)
    from fractions import Fraction
    if isinstance(ng, Fraction):
        whole = ng.numerator // ng.denominator
        return ("" if whole == ng else "~") + decimal(whole, 3)
    return decimal(int(ng), 3)


def drug(ng: int) -> str:
    # µg below a milligram, mg from there: the units a clinician reads a dose in
    if abs(ng) < NG_PER_MG:
        return decimal(ng, 3) + " " + UG
    return decimal(ng, 6) + " mg"


def ml(nl: int) -> str:
    return decimal(nl, 6) + " mL"


def ul(nl: int) -> str:
    return decimal(nl, 3) + " " + UL


def signed_ml(nl: int) -> str:
    return ("+" if nl > 0 else "") + ml(nl)


def hmm(ms: int) -> str:
    # A duration as h:mm (rounded down to the minute), with days in front from 2 days
    # on and seconds alone below a minute: "1:11 h", "3 d 4:05 h", "45 s".
    ms = int(ms)
    if ms < 0:
        return "-" + hmm(-ms)
    if ms < MINUTE_MS:
        return "%d s" % (ms // 1000)
    minutes = ms // MINUTE_MS
    h, m = divmod(minutes, 60)
    if h >= 48:
        d, h = divmod(h, 24)
        return "%d d %d:%02d h" % (d, h, m)
    return "%d:%02d h" % (h, m)


def up_text(up_day: int, up_ms: int) -> str:
    # the pump's time since power-up: "day 3 07:30:00"
    s = int(up_ms) // 1000
    return "day %d %02d:%02d:%02d" % (up_day, s // 3600, s // 60 % 60, s % 60)


def up_of(body: dict[str, Any]) -> int:
    return int(body.get("up_day") or 0) * DAY_MS + int(body.get("up_ms") or 0)


def wall_of_clock(clock: Any) -> int | None:
    # [day, ms] (days since 2000-01-01, ms after midnight) -> ms since 2000-01-01
    if isinstance(clock, (list, tuple)) and len(clock) == 2 and all(type(v) is int for v in clock):
        return clock[0] * DAY_MS + clock[1]
    return None


def wall_datetime(wall_ms: int) -> datetime.datetime:
    return CLOCK_EPOCH + datetime.timedelta(milliseconds=wall_ms)


def wall_text(wall_ms: int, seconds: bool = False, weekday: bool = False) -> str:
    # "2024-01-01 13:05" (and ":07" seconds; "Mon " in front)
    when = wall_datetime(wall_ms)
    text = when.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return (WEEKDAYS[when.weekday()] + " " + text) if weekday else text


def wall_iso(wall_ms: int | None) -> str | None:
    return None if wall_ms is None else wall_datetime(wall_ms).strftime("%Y-%m-%dT%H:%M:%S")


def date_text(wall_ms: int) -> str:
    return wall_datetime(wall_ms).strftime("%Y-%m-%d")


# ---- the wall clock of each record ---------------------------------------------------------

def boots(bodies: Sequence[dict[str, Any]]) -> list[int]:
    # The boot each body belongs to (0, 1, ...): a new one at each power_up after the
    # first record, or where the pump's time goes back. Records a restart filed before its
    # power_up (alarms_restored, state_corrupt: firmware whose power_up record did not
    # lead its boot) belong to the boot that follows.
    out: list[int] = []
    boot = 0
    last = None
    for b in bodies:
        t = up_of(b)
        if b.get("ev") == "power_up":
            j = len(out)
            while j and out[j - 1] == boot and up_of(bodies[j - 1]) == 0 and \
                    bodies[j - 1].get("ev") in ("alarms_restored", "state_corrupt"):
                j -= 1
            if j and out[j - 1] == boot:  # (else the time going back started it already)
                boot += 1
            out[j:] = [boot] * (len(out) - j)
        elif last is not None and t < last:
            boot += 1
        out.append(boot)
        last = t
    return out


def place_on_wall_clock(bodies: Sequence[dict[str, Any]], extrapolate: bool = False) -> list[int | None]:
    """The wall clock (ms since 2000-01-01) of each record or status frame, in order, or
    None where the pump's clock was not set or no record tells where it stood. Anchors:
    a power_up's `wall`, a `clock` event (and, when the clock was valid before, where it
    stood just before: `moved_ms`), a status frame's `clock`. Within a boot the wall clock
    runs with the pump's time, from the last anchor before a record, else back from the
    first after it. With extrapolate (a time axis, not what the pump's clock read), a
    record of a boot whose clock was not set yet is placed from the boot's first set
    clock, as the pump's elapsed time puts it."""
    boot_of = boots(bodies)
    out: list[int | None] = [None] * len(bodies)
    by_boot: dict[int, list[int]] = {}
    for i, b in enumerate(boot_of):
        by_boot.setdefault(b, []).append(i)
    for indices in by_boot.values():
        # anchors: (index, up ms, wall just after, wall just before; None: unknown,
        # False: not set)
        anchors: list[tuple[int, int, Any, Any]] = []
        for i in indices:
            b = bodies[i]
            up = up_of(b)
            if b.get("t") == "status":
                w = wall_of_clock(b.get("clock"))
                anchors.append((i, up, w if w is not None else False, w if w is not None else False))
            elif b.get("ev") == "power_up":
                if "wall" in b:
                    w = wall_of_clock(b.get("wall"))
                    anchors.append((i, up, w if w is not None else False, w if w is not None else False))
                elif b.get("clock") == "not_set":
                    anchors.append((i, up, False, False))
            elif b.get("ev") == "clock" and type(b.get("day")) is int and type(b.get("ms")) is int:
                w = b["day"] * DAY_MS + b["ms"]
                moved = b.get("moved_ms")
                before: Any = (w - moved if type(moved) is int else None) if b.get("was_valid") else False
                anchors.append((i, up, w, before))
        if not anchors:
            continue
        k = 0
        for i in indices:
            up = up_of(bodies[i])
            while k + 1 < len(anchors) and anchors[k + 1][0] <= i:
                k += 1
            a = anchors[k]
            if a[0] <= i:
                w = a[2]
                out[i] = w + up - a[1] if type(w) is int else None
            else:  # before the first anchor: back from it
                w = a[3]
                out[i] = w - (a[1] - up) if type(w) is int else None
            if out[i] is None and extrapolate:
                known = [x for x in anchors if type(x[2]) is int]
                if known:
                    near = min(known, key=lambda x: abs(x[0] - i))
                    out[i] = near[2] + up - near[1]
    return out


class LivePlacer:
    # The same, as frames arrive (the dashboard): forward from the last anchor only.
    def __init__(self) -> None:
        self.anchor: tuple[int, int | None] | None = None  # (up ms, wall ms or None)

    def feed(self, body: dict[str, Any]) -> int | None:
        up = up_of(body)
        if self.anchor is not None and up < self.anchor[0]:
            self.anchor = None  # the pump restarted
        if body.get("t") == "status":
            self.anchor = (up, wall_of_clock(body.get("clock")))
        elif body.get("ev") == "power_up":
            self.anchor = (up, wall_of_clock(body.get("wall"))) if "wall" in body or \
                body.get("clock") == "not_set" else None
        elif body.get("ev") == "clock" and type(body.get("day")) is int and type(body.get("ms")) is int:
            self.anchor = (up, body["day"] * DAY_MS + body["ms"])
        if self.anchor is None or self.anchor[1] is None:
            return None
        return self.anchor[1] + up - self.anchor[0]


def when_text(body: dict[str, Any], wall_ms: int | None) -> str:
    # a record's time for a person: the wall clock, else the pump's time since power-up
    if wall_ms is not None:
        return wall_text(wall_ms, seconds=True)
    return up_text(int(body.get("up_day") or 0), int(body.get("up_ms") or 0))


# ---- the pump's words, in clinical units ---------------------------------------------------

_UNIT_SUFFIX = (
    ("_ng_per_day", lambda v: "%s %s/day" % (ug(v), UG)),
    ("_nl_per_day", lambda v: "%s mL/day" % decimal(v, 6)),
    ("_nl_per_hour", lambda v: "%s %s/h" % (decimal(v, 3), UL)),
    ("_ug_per_ml", lambda v: "%s %s/mL" % (v, UG)),
    ("_ug_per_day", lambda v: "%s %s/day" % (v, UG)),
    ("_ng", lambda v: "%s %s" % (ug(v), UG)),
    ("_nl", lambda v: ml(v)),
    ("_pg", lambda v: "%s %s" % (decimal(v, 6), UG)),
    ("_ms", lambda v: hmm(v)),
    ("_mv", lambda v: decimal(v, 3) + " V"),
    ("_mbar", lambda v: "%d mbar" % v),
    ("_min", lambda v: "%d min" % v),
)


def field_text(name: str, value: Any) -> str:
    # "missed_ng", 264500 -> "missed 264.5 µg"; anything without a known unit as JSON
    if type(value) is int:
        for suffix, fmt in _UNIT_SUFFIX:
            if name.endswith(suffix):
                return "%s %s" % (name[:-len(suffix)].replace("_", " "), fmt(value))
    shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return "%s %s" % (name.replace("_", " "), shown)


_TOKEN = re.compile(r"\b([a-z][a-z0-9_]*?)(_ng_per_day|_nl_per_day|_nl_per_hour|_ug_per_ml|_ug_per_day|_ng|_nl|_pg|_ms)"
                    r"=(-?\d+)")
_RANGE = re.compile(r"\b(-?\d+)\.\.(-?\d+) (nL|ng|pg|ms)\b")
_AMOUNT = re.compile(r"(?<![\w.])(-?\d+) (nL|ng|pg)\b")
_UG_WORD = re.compile(r"(?<=\d) ug\b")


def _amount(value: int, unit: str) -> str:
    if unit == "nL":
        return ml(value)
    if unit == "ng":
        return "%s %s" % (ug(value), UG)
    if unit == "pg":
        return "%s %s" % (decimal(value, 6), UG)
    return hmm(value)


def reason_text(text: Any) -> str:
    """A refusal's reason as the pump wrote it, with its nL, ng, pg and ms in mL, µg and
    h:mm: "the bridge is running: 149500 nL of the old drug still in the line" -> "...
    0.1495 mL of the old drug ..."; "volume_nl=500000000: outside the allowed range
    1..40000000 nL" -> "volume 500 mL: outside the allowed range 0.000001 mL..40 mL"."""
    if not isinstance(text, str):
        return "" if text is None else str(text)

    def token(m: re.Match[str]) -> str:
        return field_text(m.group(1) + m.group(2), int(m.group(3)))

    def span(m: re.Match[str]) -> str:
        unit = m.group(3)
        return "%s..%s" % (_amount(int(m.group(1)), unit), _amount(int(m.group(2)), unit))

    out = _TOKEN.sub(token, text)
    out = _RANGE.sub(span, out)
    out = _AMOUNT.sub(lambda m: _amount(int(m.group(1)), m.group(2)), out)
    out = _UG_WORD.sub(" " + UG, out)
    return out.replace("ug/mL", UG + "/mL").replace("ug/day", UG + "/day")


def profile_daily_ng(steps: Sequence[Sequence[int]]) -> Any:
    # The drug one day of a profile programs when the day before followed it too (its
    # last step runs until its first): ng, exactly (a Fraction when not whole).
    from fractions import Fraction
    total = 0  # ng/day x minutes
    prev_start, prev_rate = 0, steps[-1][1]
    for start, rate in steps:
        total += prev_rate * (start - prev_start)
        prev_start, prev_rate = start, rate
    total += prev_rate * (1440 - prev_start)
    return Fraction(total, 1440)


def weekday_daily_ng(program: dict[str, Any]) -> list[Any]:
    # The daily dose of each weekday, Monday first (wire form program), exactly. A day
    # whose profile starts late runs the day before's last step until then.
    from fractions import Fraction
    profiles = program.get("profiles") or {}
    if not profiles and "dose_ug_per_day" in program:
        return [Fraction(int(program["dose_ug_per_day"]) * NG_PER_UG)] * 7
    names = sorted(profiles)
    week = list(program.get("week") or [names[0]] * 7)
    out = []
    for d in range(7):
        steps = profiles[week[d]]
        before = profiles[week[(d + 6) % 7]][-1][1]
        total = 0
        prev_start, prev_rate = 0, before
        for start, rate in steps:
            total += prev_rate * (start - prev_start)
            prev_start, prev_rate = start, rate
        total += prev_rate * (1440 - prev_start)
        out.append(Fraction(total, 1440))
    return out


def program_text(program: dict[str, Any]) -> str:
    # "baclofen 2000 µg/mL, 600 µg/day" or "..., flex: 460 µg a day" (Mon-Fri .., Sat ..)
    head = "%s %s %s/mL" % (program.get("drug"), program.get("conc_ug_per_ml"), UG)
    daily = weekday_daily_ng(program)
    profiles = program.get("profiles") or {}
    flat = len(profiles) == 1 and len(next(iter(profiles.values()))) == 1
    if "dose_ug_per_day" in program and not profiles:
        return "%s, %s %s/day" % (head, program["dose_ug_per_day"], UG)
    if flat:
        return "%s, %s %s/day" % (head, ug(next(iter(profiles.values()))[0][1]), UG)
    if len(set(daily)) == 1:
        return "%s, flex: %s %s a day" % (head, ug(daily[0]), UG)
    return "%s, flex: %s %s a day" % (head, "-".join(ug(d) for d in (min(daily), max(daily))), UG)


def _alarm_detail(b: dict[str, Any]) -> str:
    parts = []
    if "excess_mbar" in b:
        parts.append("%d mbar over the baseline" % b["excess_mbar"] + (
            " of %d mbar" % b["baseline_mbar"] if "baseline_mbar" in b else ""))
    if "reservoir_nl" in b:
        parts.append("%s left" % ml(b["reservoir_nl"]) + (", low level %s" % ml(b["low_nl"]) if "low_nl" in b else ""))
    if "days_to_empty" in b:
        parts.append("empty in %s day(s) at worst" % b["days_to_empty"] + (
            ", alarm at %s days" % b["low_days"] if "low_days" in b else ""))
    if "mv" in b:
        parts.append("supply %s V" % decimal(b["mv"], 3))
    if "raw" in b:
        parts.append("sensor reading %s" % b["raw"])
    if "file" in b:
        parts.append("file %s" % b["file"])
    if b.get("restored"):
        parts.append("restored after a restart: time without power is missing")
    if "strokes" in b:
        parts.append("%s strokes" % b["strokes"])
    if "limit" in b:
        parts.append("limit %s" % b["limit"])
    if "episodes" in b:
        parts.append("%s episodes within the hour" % b["episodes"])
    return ", ".join(parts)


def event_text(b: dict[str, Any]) -> str:
    """One event (or log record) as a sentence in clinical units."""
    ev = str(b.get("ev"))
    g = b.get
    if ev == "power_up":
        notes = ["restored" if g("restored") else "fresh state"]
        if g("watchdog_reset"):
            notes.append("after a watchdog reset")
        clock = g("clock")
        if clock == "restored":
            notes.append("clock restored: the time without power is missing from it")
        elif clock == "not_set":
            notes.append("clock not set")
        return "power-up %s (%s)" % (g("boots"), ", ".join(notes))
    if ev == "program":
        return "program: " + program_text(b)
    if ev == "limits":
        return "hard limits: max rate %s %s/day, max %s %s in any 24 h, max bolus %s %s" % (
            ug(g("max_rate_ng_per_day") or 0), UG, ug(g("max_24h_ng") or 0), UG, ug(g("max_bolus_ng") or 0), UG)
    if ev == "clock":
        text = "clock set to %s" % wall_text(int(g("day") or 0) * DAY_MS + int(g("ms") or 0))
        if not g("was_valid"):
            text += " (it was not set)"
        elif type(g("moved_ms")) is int:
            text += " (moved %s %s)" % (hmm(abs(g("moved_ms"))), "forward" if g("moved_ms") >= 0 else "back")
        else:
            text += " (moved 6 days or more)"
        if g("skipped_ng"):
            text += "; the schedule's %s %s over the hours skipped are not given" % (ug(g("skipped_ng")), UG)
        if g("repeated_ng"):
            text += "; the schedule's %s %s over the hours repeated are not given twice" % (ug(g("repeated_ng")), UG)
        return text
    if ev == "refused":
        text = "refused %s: %s" % (g("what"), reason_text(g("reason")))
        if g("limit"):
            text += " (hard limit %s)" % g("limit")
        if type(g("retry_in_ms")) is int:
            text += "; again in %s" % hmm(g("retry_in_ms"))
        return text
    if ev == "fill":
        text = "filled %s of %s %s/mL" % (ml(int(g("volume_nl") or 0)), g("conc_ug_per_ml"), UG)
        if g("bridge_nl"):
            text += "; %s of the old drug in the line, given at its own strength (bridge)" % ml(g("bridge_nl"))
        return text
    if ev == "state":
        state = g("state")
        if state == "stopped":
            return "delivery STOPPED: %s" % g("reason")
        return {"running": "delivery running", "idle": "idle: no program or no drug"}.get(str(state), str(state))
    if ev == "pause":
        return "paused by the clinician: keep-open rate %s/day" % ul(int(g("keep_open_nl_per_day") or 0))
    if ev == "resume":
        return "resumed by the clinician: the program runs"
    if ev == "titration":
        how = "%+d %%" % g("percent") if type(g("percent")) is int else "to %s %s a day" % (ug(g("daily_ng") or 0), UG)
        return "titration %s, %s" % (how, "now" if not g("in_min") else "in %s" % hmm(int(g("in_min")) * MINUTE_MS))
    if ev == "bolus_start":
        if g("kind") == "prime":
            return "priming %s over %s (%s strokes)" % (ul(int(g("volume_nl") or 0)), hmm(int(g("duration_ms") or 0)),
                                                      g("strokes"))
        return "%s bolus %s %s over %s min (%s strokes)" % (g("kind"), ug(g("requested_ng") or 0), UG,
                                                          g("duration_min"), g("strokes"))
    if ev == "bolus_end":
        if g("kind") == "prime":
            return "priming ended (%s): %s of %s strokes" % (g("end"), g("strokes_confirmed"), g("strokes_total"))
        if g("kind") == "bridge":
            return "bridge ended (%s): the new drug is at the catheter tip" % g("end")
        return "%s bolus ended (%s): %s of %s %s given, %s of %s strokes" % (
            g("kind"), g("end"), ug(g("delivered_ng") or 0), ug(g("requested_ng") or 0), UG,
            g("strokes_confirmed"), g("strokes_total"))
    if ev == "withheld":
        return "%s stroke(s) withheld: %s %s in the last 24 h, the maximum is %s %s" % (
            g("strokes"), ug(g("window_24h_ng") or 0), UG, ug(g("max_24h_ng") or 0), UG)
    if ev == "strokes_unconfirmed":
        return "%s stroke(s) not confirmed by the rotor sensor%s" % (g("strokes"), " (tried again)" if g("retry") else "")
    if ev == "state_corrupt":
        return "stored state failed its check (%s): the pump started idle" % (
            g("reason") or "%s bytes, %s frames" % (g("bytes"), g("frames")))
    if ev == "alarm":
        state = g("state")
        detail = _alarm_detail(b)
        if state == "raised":
            text = "ALARM %s (%s priority)" % (g("code"), g("priority"))
        elif state == "latched":
            text = "alarm %s latched: it stays until acknowledged" % g("code")
        else:
            text = "alarm %s cleared" % g("code")
        return text + (": " + detail if detail else "")
    if ev == "alarms_restored":
        codes = [str(a[0]) for a in g("alarms") or [] if isinstance(a, (list, tuple)) and a]
        return "alarms active again after the restart: %s" % (", ".join(codes) or "none")
    if ev == "resumed":
        missed = g("missed_ng")
        text = "delivery resumed after %s stopped" % hmm(int(g("stopped_ms") or 0))
        if type(missed) is int and missed >= 0:
            text += ": missed %s %s (%s), not made up" % (ug(missed), UG, ml(int(g("missed_nl") or 0)))
        return text
    if ev == "refill":
        text = "refill: withdrawn %s, expected %s (difference %s, tolerance %s)" % (
            ml(int(g("withdrawn_nl") or 0)), ml(int(g("expected_nl") or 0)), signed_ml(int(g("difference_nl") or 0)),
            ml(int(g("tolerance_nl") or 0)))
        return text + ("  MISMATCH" if g("mismatch") else "")
    if ev == "ack":
        return "alarms acknowledged; cleared: %s" % (", ".join(g("cleared") or []) or "none")
    if ev == "silence":
        return "alarm sound silenced for %s min (the light stays)" % g("minutes")
    if ev == "silence_end":
        return "alarm silence over"
    if ev == "alarm_settings":
        return "reservoir alarm levels: low at %s or %s days before empty; empty floor %s" % (
            ml(int(g("low_reservoir_nl") or 0)), g("low_days"), ml(int(g("empty_floor_nl") or 0)))
    if ev == "auth_failed":
        return "`%s` not authenticated (%s, role %s)" % (g("cmd"), g("reason"), g("role"))
    if ev == "auth_lockout":
        return "commands locked out for %s after %s failed authentications" % (hmm(int(g("locked_ms") or 0)),
                                                                                g("failures"))
    if ev == "auth_lockout_end":
        return "lockout over: it turned %s command(s) away" % g("refused")
    if ev == "keys_invalid":
        return "command keys not usable: %s" % g("reason")
    if ev == "command_error":
        return "`%s` failed inside the pump: %s" % (g("cmd"), g("error"))
    hidden = ("t", "ev", "up_day", "up_ms", "wall_clock", "boot")
    fields = [field_text(k, b[k]) for k in sorted(b) if k not in hidden]
    return ev + (": " + ", ".join(fields) if fields else "")


def alarm_words(alarms: Iterable[Any]) -> str:
    return ", ".join(str(a[0]) for a in alarms if isinstance(a, (list, tuple)) and a)
