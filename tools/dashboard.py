"""What the console shows: the pump's frames turned into text, with exact unit formatting.

Pure functions and one small state holder; no terminal, no port, so every figure the
console prints can be tested on its own. Drug and volume are integers on the pump (ng,
nL); they are shown by moving the decimal point, never through a float, so 0.1 + 0.2
problems cannot make a dose look different from what the pump counted.
"""
from __future__ import annotations

import collections
import json
from typing import Any, Iterable

DAY_MS = 86400000
NL_PER_ML = 1000000
NG_PER_UG = 1000
NG_PER_MG = 1000000
EVENTS_KEPT = 8
_EVENT_HIDDEN = ("t", "ev", "up_day", "up_ms")


def decimal(n: int, places: int) -> str:
    # n / 10**places written out exactly, trailing zeros dropped: decimal(1234500, 6) ->
    # "1.2345".
    sign = "-" if n < 0 else ""
    whole, frac = divmod(abs(n), 10 ** places)
    digits = str(frac).rjust(places, "0").rstrip("0") if places else ""
    return sign + str(whole) + ("." + digits if digits else "")


def ml(volume_nl: int) -> str:
    return decimal(volume_nl, 6) + " mL"


def ml_per_day(rate_nl_per_day: int) -> str:
    return decimal(rate_nl_per_day, 6) + " mL/day"


def drug(dose_ng: int) -> str:
    # ug below a milligram, mg from there: the units a clinician reads a dose in.
    if abs(dose_ng) < NG_PER_MG:
        return decimal(dose_ng, 3) + " ug"
    return decimal(dose_ng, 6) + " mg"


def days_left(reservoir_nl: int, rate_nl_per_day: int) -> str:
    # Rounded down to a tenth: an estimate of time to empty must never overstate it.
    if rate_nl_per_day <= 0:
        return "no delivery"
    tenths = reservoir_nl * 10 // rate_nl_per_day
    return "%d.%d days" % divmod(tenths, 10)


def sim_time(up_day: int, up_ms: int) -> str:
    s = up_ms // 1000
    return "day %d %02d:%02d:%02d" % (up_day, s // 3600, s // 60 % 60, s % 60)


def duration_ms(ms: int) -> str:
    # A period in the largest unit that states it exactly: "15 min", "6 h", "250 ms".
    for unit, size in (("d", DAY_MS), ("h", 3600000), ("min", 60000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return "%d %s" % (ms // size, unit)
    return "%d ms" % ms


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def event_line(body: dict[str, Any], tag: str = "") -> str:
    # "day 0 00:00:00  power_up  boots=1 restored=false"; `tag` goes before the name.
    fields = " ".join("%s=%s" % (k, _value(body[k])) for k in sorted(body) if k not in _EVENT_HIDDEN)
    line = "%s  %s%s" % (sim_time(body.get("up_day", 0), body.get("up_ms", 0)), tag, body.get("ev"))
    return line + ("  " + fields if fields else "")


def pump_state(status: dict[str, Any]) -> str:
    reason = status.get("stop_reason")
    return status["state"] + (" (%s)" % reason if reason else "")


def program(status: dict[str, Any]) -> str:
    if not status.get("drug"):
        return "none"
    return "%s  %d ug/mL  %d ug/day" % (status["drug"], status["conc_ug_per_ml"],
                                        status["dose_ug_per_day"])


def strokes(status: dict[str, Any]) -> str:
    return "%d programmed  %d confirmed  %d unconfirmed" % (
        status["strokes_programmed"], status["strokes_confirmed"], status["strokes_unconfirmed"])


def status_fields(status: dict[str, Any]) -> list[tuple[str, str]]:
    # (label, text) rows: the dashboard, `console status` and the final summary share them.
    rate = status["rate_nl_per_day"]
    return [
        ("Time", sim_time(status["up_day"], status["up_ms"]) + " since power-up"),
        ("Pump", pump_state(status)),
        ("Program", program(status)),
        ("Rate", ml_per_day(rate)),
        ("Delivered", "%s  %s" % (ml(status["delivered_nl"]), drug(status["delivered_ng"]))),
        ("Reservoir", "%s  %s left at this rate" % (ml(status["reservoir_nl"]),
                                                   days_left(status["reservoir_nl"], rate))),
        ("Strokes", strokes(status)),
    ]


def plain_line(status: dict[str, Any]) -> str:
    # One status frame as one line, for logs and pipes.
    return "%s  %s  %s  rate %s  delivered %s %s  reservoir %s (%s)  strokes %s" % (
        sim_time(status["up_day"], status["up_ms"]), pump_state(status), program(status),
        ml_per_day(status["rate_nl_per_day"]), ml(status["delivered_nl"]),
        drug(status["delivered_ng"]), ml(status["reservoir_nl"]),
        days_left(status["reservoir_nl"], status["rate_nl_per_day"]), strokes(status))


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


class Dashboard:
    # The newest status and the last few events, fed frame bodies as they arrive.
    def __init__(self, title: str) -> None:
        self.title = title
        self.status: dict[str, Any] | None = None
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=EVENTS_KEPT)
        self.statuses = 0

    def feed(self, body: dict[str, Any]) -> str | None:
        # Returns the frame's kind when the view changed ("status", "event").
        kind = body.get("t")
        if kind == "status":
            self.status = body
            self.statuses += 1
        elif kind == "event":
            self.events.append(body)
        else:
            return None
        return kind

    def lines(self, health: LinkHealth) -> list[str]:
        out = [self.title, ""]
        if self.status is None:
            out.append("Waiting for the first status frame...")
        else:
            out += ["%-15s %s" % row for row in status_fields(self.status)]
        out += ["%-15s %s" % row for row in health.rows()]
        out += ["", "Last events"]
        out += ["  " + event_line(e) for e in reversed(self.events)] or ["  none yet"]
        out += ["", "q or Ctrl-C: quit"]
        return out

    def summary(self, ending: str, health: LinkHealth) -> list[str]:
        out = ["Run ended: " + ending]
        if self.status is None:
            out.append("  no status frame was received")
        else:
            s = self.status
            out.append("Last status, at %s:" % sim_time(s["up_day"], s["up_ms"]))
            out += ["  %-13s %s" % row for row in status_fields(s)[1:]]
        out += ["  %-13s %s" % row for row in health.rows(with_age=False)]
        return out

    def summary_json(self, ending: str, health: LinkHealth, exit_status: int | None) -> dict[str, Any]:
        return {"t": "summary", "ending": ending, "exit_status": exit_status,
                "status": self.status, "link": health.to_dict()}


def fit(lines: Iterable[str], width: int) -> list[str]:
    # Clip each line to the screen width (curses raises when writing past the edge).
    return [line[:max(width - 1, 0)] for line in lines]
