"""Alarm performance on the simulated Pico (part of `make bench`).

The firmware's shell and core run on the simulated board (CPython, in process), with the
sim's default sensor noise, CSF drift and coughs. Three measurements:

1. Occlusion and motor stall. A full `occlusion` (or a `stall`) fault starts at a seeded
   time once the pressure detector has settled (at least 1 h and 10 strokes in), and the
   run goes on until the pump raises `occlusion` (or `motor_stall`). Figures: the time
   from the fault to the alarm, the strokes the motor was driven into it (the board's
   count, so a retry counts), the volume the program asked for meanwhile, and the volume
   pumped into a blocked line and held there.
2. The unintended bolus. The occlusion ends some time after its alarm; what was held in
   the line reaches the patient at once (the fault's `released_nl`). Over the first
   minutes after the release, the catheter tip's delivery is compared with what the
   program gives over the same minutes: more is an unintended bolus, less is the time
   the pump took to see the line open again (it does not make up what it missed).
3. False alarms. The typical program for many simulated days and several seeds, no
   faults, the clock set, refilled well before the reservoir alarms would apply: every
   alarm the pump raises after its set-up is a false one.

Alarms are counted from the frames the firmware sends (the link is tapped): the same
records it appends to its log (pump.engine `_alarm`: an `alarm` event with
`state: raised`), which a long run could rotate away.
Nothing here asserts: tools/bench.py prints the figures next to their targets.
"""
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(ROOT, "firmware"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import app  # noqa: E402
from boards.sim import Board  # noqa: E402
from boards.sim import config as sim_config  # noqa: E402
from boards.sim.rng import Rng  # noqa: E402
from boards.stdiolink import NullLink  # noqa: E402
from pump import wire  # noqa: E402
from pump.core import Pump  # noqa: E402
from pump.engine import RUNNING  # noqa: E402
from pump.program import deliverable_ng_per_day  # noqa: E402

DAY_MS = 86400000
HOUR_MS = 3600000
MIN_MS = 60000
MONDAY = 2  # 2000-01-03, as in tools/bench_accuracy.py
FILL_NL = 40000000
REFILL_BELOW_NL = 10000000  # 25 days at 0.4 mL/day: the reservoir alarms never apply
RELEASE_WINDOW_MS = 10 * MIN_MS  # the delivery compared with the program after a release
STROKE_NL = sim_config.STROKE_NL

# targets from the project's issue
TARGET_OCCLUSION_STROKES = 3
TARGET_STALL_STROKES = 2
INSULIN_PUMP_UL = 30  # what a commercial insulin pump may miss before its occlusion alarm
TARGET_FALSE_ALARMS = 0


class AlarmTap(NullLink):
    # A link that listens: every alarm the firmware raises, with the board's virtual time.
    def __init__(self):
        self.clock = None
        self.raised = []  # (virtual ms, code)

    def write(self, data):
        if b'"ev":"alarm"' in data:
            for code in raised_codes(data):
                self.raised.append((self.clock.ms, code))


def raised_codes(data):
    # the codes of the `alarm ... raised` events among the frames in data (a log, or
    # what was sent)
    out = []
    for frame in wire.Reader(max_frame=1 << 20).feed(data):
        body = frame.body
        if body.get("ev") == "alarm" and body.get("state") == "raised":
            out.append(body.get("code"))
    return out


class Scenario:
    # A program (and optionally a clinician bolus it runs when the fault comes) with the
    # volume rate it programs, for the figures' "programmed meanwhile".
    def __init__(self, name, conc, ng_per_day, bolus=None):
        self.name = name
        self.conc = conc
        self.ng_per_day = ng_per_day
        self.bolus = bolus  # (dose_ng, duration_min) or None
        self.nl_per_day = ng_per_day * 1000 // conc
        self.interval_ms = STROKE_NL * DAY_MS // self.nl_per_day  # between basal strokes
        self.bolus_ms = -1  # set by a run: when its bolus started
        self.every = _every(self.interval_ms)
        if bolus:
            self.every = "%s (bolus)" % _dur(bolus[1] * MIN_MS * STROKE_NL * conc // (bolus[0] * 1000))

    def program(self):
        p = {"drug": "baclofen", "conc_ug_per_ml": self.conc}
        if self.ng_per_day % 1000:
            p["profiles"] = {"all": [[0, self.ng_per_day]]}  # below 1 ug/day: ng/day
        else:
            p["dose_ug_per_day"] = self.ng_per_day // 1000
        return p

    def strokes_due(self, t0, t1):
        # Programmed strokes that fall due in [t0, t1) (virtual ms; the program starts at
        # 0), recomputed here from the prescription: stroke n of a rate falls due at the
        # first ms at or after n strokes' worth of it (pump/strokes.py's rule), and a
        # bolus of N strokes over T ms spaces them T/N apart from its start.
        per = STROKE_NL * DAY_MS

        def basal(t):
            return t * self.nl_per_day // per if t >= 0 else 0

        n = basal(t1 - 1) - basal(t0 - 1)
        if self.bolus and self.bolus_ms >= 0:
            dose_ng, minutes = self.bolus
            total = dose_ng * 1000 // (STROKE_NL * self.conc)
            span = minutes * MIN_MS

            def bolus(t):
                t -= self.bolus_ms
                return 0 if t < 0 else min(total, t * total // span)

            n += bolus(t1 - 1) - bolus(t0 - 1)
        return n

    def programmed_nl(self, t0, t1):
        # what the prescription asks for between two virtual times (float nL): the basal,
        # and the share of the bolus whose spread falls in between
        nl = self.nl_per_day * (t1 - t0) / DAY_MS
        if self.bolus and self.bolus_ms >= 0:
            dose_ng, minutes = self.bolus
            b0, b1 = self.bolus_ms, self.bolus_ms + minutes * MIN_MS
            overlap = min(t1, b1) - max(t0, b0)
            if overlap > 0:
                nl += dose_ng * 1000 / self.conc * overlap / (b1 - b0)
        return nl


def _volume(nl_per_day):
    if nl_per_day >= 100000:
        return "%g mL" % (nl_per_day / 1e6)
    return "%g uL" % (nl_per_day / 1e3)


def scenarios():
    # The extremes are the firmware's own: the slowest and fastest rates its program
    # validator accepts (one stroke a day; the head's top rate, at most 30 mL/day),
    # at labelled baclofen concentrations (50, 500 and 2000 ug/mL).
    cfg = app.pump_config(sim_config)
    lo, _ = deliverable_ng_per_day(2000, cfg.stroke_nl, cfg.max_nl_per_day)
    _, hi = deliverable_ng_per_day(50, cfg.stroke_nl, cfg.max_nl_per_day)
    out = []
    for what, conc, ng in (("minimum", 2000, lo), ("low dose", 2000, 20000), ("typical", 500, 200000),
                           ("maximum", 50, hi)):
        out.append(Scenario("%s %g ug/day at %d ug/mL (%s/day)" % (what, ng / 1000, conc, _volume(
            ng * 1000 // conc)), conc, ng))
    out.append(Scenario("typical, in a 100 ug clinician bolus over 10 min (the head's top rate)",
                        500, 200000, bolus=(100000, 10)))
    return out


def typical():
    return Scenario("typical 200 ug/day at 500 ug/mL (0.4 mL/day)", 500, 200000)


def _setup(flash, scenario, seed):
    tap = AlarmTap()
    board = Board(flash, tap, seed=seed)
    tap.clock = board.clock
    a = app.App(board, Pump(app.pump_config(board.config, DAY_MS)))
    board.head.reservoir_nl = FILL_NL
    a.start()
    reason = app.provision(a, scenario.program(), FILL_NL, clock=[MONDAY, 0])
    assert reason is None, reason
    return a, board, tap


def _run(a, board, end_ms, until=None):
    # The shell's loop up to end_ms (a pass is made at end_ms), or until until() holds
    # after a pass. Returns True if until() stopped it.
    clock = board.clock
    while True:
        w = a.step()
        if until is not None and until():
            return True
        if clock.ms >= end_ms:
            return False
        board.wait(w if clock.ms + w <= end_ms else end_ms - clock.ms)


def _driven(head):
    # strokes the motor has been driven so far: turned, stalled, or still queued
    pending = head.steps_queued + head.steps_into_stroke
    return head.strokes_made + head.rotor_faults.strokes_stalled + (
        pending + head.steps_per_stroke - 1) // head.steps_per_stroke


def fault_run(scenario, kind, seed):
    # One `occlusion` or `stall` fault; returns a dict of what happened (times in ms,
    # volumes in nL; alarm_ms None if no alarm came within the fault's span).
    code = "occlusion" if kind == "occlusion" else "motor_stall"
    interval = scenario.interval_ms
    rng = Rng(seed * 1009 + (7 if kind == "stall" else 3))
    settle = max(HOUR_MS, 10 * interval)  # three readings fill the detector's median
    if scenario.bolus:
        span = scenario.bolus[1] * MIN_MS // 2  # the fault comes in the bolus's first half
    else:
        span = max(HOUR_MS, interval)  # any phase against the stroke grid
    hold = max(HOUR_MS, 6 * interval)  # the fault's span; an occlusion ends after it
    with tempfile.TemporaryDirectory() as flash:
        a, board, tap = _setup(flash, scenario, seed)
        head = board.head
        start = settle + 1 + rng.below(span)
        if scenario.bolus:
            _run(a, board, settle)
            reason = a.pump.bolus_request(board.ticks_ms(), *scenario.bolus)
            assert reason is None, reason
            scenario.bolus_ms = board.clock.ms
        fault = board.faults.add(kind, start, start + hold)
        _run(a, board, start - 1)  # the board as it stands just before the fault
        driven0 = _driven(head)
        backflow0 = board.line.backflow_nl
        seen = len(tap.raised)
        alarmed = _run(a, board, start + hold - 1, lambda: any(c == code for _, c in tap.raised[seen:]))
        now = board.clock.ms
        r = {"kind": kind, "seed": seed, "start_ms": start, "hold_ms": hold,
             "alarm_ms": now - start if alarmed else None,
             "strokes": _driven(head) - driven0,
             "programmed_nl": scenario.programmed_nl(start, now),
             "due": scenario.strokes_due(start, now),
             "stored_nl": board.line.stored_nl,
             "backflow_nl": board.line.backflow_nl - backflow0}
        if kind != "occlusion" or not alarmed:
            return r
        # the release: the occlusion ends at start + hold
        release = start + hold
        _run(a, board, release - 1)
        delivered0 = board.line.delivered_nl
        resumed = _run(a, board, release + RELEASE_WINDOW_MS,
                       lambda: board.clock.ms >= release and a.pump.state == RUNNING)
        r["resumed_ms"] = board.clock.ms - release if resumed else None
        _run(a, board, release + RELEASE_WINDOW_MS)
        r["released_nl"] = fault.released_nl
        r["window_delivered_nl"] = board.line.delivered_nl - delivered0
        r["window_programmed_nl"] = scenario.programmed_nl(release, release + RELEASE_WINDOW_MS)
        return r


def false_alarms(seed, days, scenario=None, faults=()):
    # The typical program for `days` days on a board of this seed; faults: (kind, start_ms,
    # end_ms) to inject (a check that an alarm would be counted). Returns the alarms
    # raised after the set-up, as (virtual ms, code), and the same count from the log.
    scenario = scenario or typical()
    with tempfile.TemporaryDirectory() as flash:
        a, board, tap = _setup(flash, scenario, seed)
        log_setup = len(raised_codes(_log(board)))
        seen = len(tap.raised)
        for kind, s, e in faults:
            board.faults.add(kind, s, e)
        pump = a.pump
        head = board.head
        clock = board.clock
        wait = board.wait
        step = a.step
        conc = scenario.conc
        refills = 0
        end = days * DAY_MS
        t0 = time.perf_counter()
        while True:
            w = step()
            if pump.reservoir.volume_nl < REFILL_BELOW_NL:
                # the clinician's refill: withdraw what is left (the truth), fill anew
                withdrawn = head.reservoir_nl
                head.reservoir_nl = FILL_NL
                reason = pump.refill(board.ticks_ms(), withdrawn, FILL_NL, conc, conc)
                assert reason is None, reason
                refills += 1
                w = step()
            if clock.ms >= end:
                break
            wait(w if clock.ms + w <= end else end - clock.ms)
        wall_s = time.perf_counter() - t0
        return {"seed": seed, "days": days, "raised": tap.raised[seen:], "refills": refills, "wall_s": wall_s,
                "log_raised": len(raised_codes(_log(board))) - log_setup}


def _log(board):
    s = board.storage
    return (s.read("log.1") or b"") + (s.read("log") or b"")


# ---- the tables tools/bench.py prints ----------------------------------------------------

def _dur(ms):
    if ms < 10000:
        return "%.2f s" % (ms / 1000)
    if ms < 2 * MIN_MS:
        return "%.1f s" % (ms / 1000)
    if ms < 2 * HOUR_MS:
        return "%.1f min" % (ms / MIN_MS)
    if ms < 2 * DAY_MS:
        return "%.1f h" % (ms / HOUR_MS)
    return "%.2f d" % (ms / DAY_MS)


def _ul(nl):
    return "%.2f uL" % (nl / 1000)


def _verdict(ok):
    return "meets" if ok else "MISSES"


def tables(days=90, quick=False, fault_seeds=None, alarm_seeds=None):
    # [(title, header, rows, notes)] for tools/bench.py
    fault_seeds = fault_seeds or (3 if quick else 10)
    alarm_seeds = alarm_seeds or (2 if quick else 10)
    runs = []
    for s in scenarios():
        occl = [fault_run(s, "occlusion", seed) for seed in range(1, fault_seeds + 1)]
        stall = [fault_run(s, "stall", seed) for seed in range(1, fault_seeds + 1)]
        runs.append((s, occl, stall))
    out = [_occlusion_table(runs, fault_seeds), _stall_table(runs, fault_seeds), _release_table(runs, fault_seeds)]
    out.append(_false_alarm_table(days, alarm_seeds))
    return out


def _worst_alarm(results):
    # over the seeds, the worst of each figure: (time, strokes driven, strokes due,
    # programmed nL, held nL, alarmed); a run with no alarm is the worst there is
    missing = [r for r in results if r["alarm_ms"] is None]
    if missing:
        r = missing[0]
        return ("none in %s" % _dur(r["hold_ms"]), r["strokes"], r["due"], r["programmed_nl"], r["stored_nl"],
                False)
    return (_dur(max(r["alarm_ms"] for r in results)), max(r["strokes"] for r in results),
            max(r["due"] for r in results), max(r["programmed_nl"] for r in results),
            max(r["stored_nl"] for r in results), True)


def _every(interval_ms):
    return _dur(interval_ms) if interval_ms < 2 * HOUR_MS else "%.1f h" % (interval_ms / HOUR_MS)


def _seeds(n):
    return "worst of %d seed%s" % (n, "s" if n > 1 else "")


def _occlusion_table(runs, n):
    rows = []
    ok_all = True
    for s, occl, _ in runs:
        when, strokes, due, programmed, stored, alarmed = _worst_alarm(occl)
        ok = alarmed and strokes <= TARGET_OCCLUSION_STROKES
        ok_all = ok_all and ok
        rows.append((s.name, s.every, when, "%d" % strokes, "%d" % due, _ul(programmed),
                     _ul(stored), _verdict(ok)))
    notes = ["Driven = strokes the motor made into the blocked line; due = programmed strokes that fell due "
             "from the blockage to the alarm; held = pumped into the line and kept there.",
             "Target: the occlusion alarm within %d strokes of a full blockage at every rate (a commercial insulin "
             "pump may miss up to %d uL): %s." % (TARGET_OCCLUSION_STROKES, INSULIN_PUMP_UL, _verdict(ok_all))]
    return ("Occlusion: a full blockage from a seeded time to the `occlusion` alarm (%s)" % _seeds(n),
            ("program", "stroke every", "time to alarm", "driven", "due", "programmed meanwhile", "held in line",
             "driven <= %d" % TARGET_OCCLUSION_STROKES), rows, notes)


def _stall_table(runs, n):
    rows = []
    ok_all = True
    for s, _, stall in runs:
        when, strokes, due, programmed, _, alarmed = _worst_alarm(stall)
        ok = alarmed and due <= TARGET_STALL_STROKES
        ok_all = ok_all and ok
        rows.append((s.name, s.every, when, "%d" % strokes, "%d" % due, _ul(programmed),
                     _verdict(ok)))
    notes = ["Driven = strokes sent to the stalled motor, its retry included; missed = programmed strokes that "
             "fell due from the stall to the alarm (none of them delivered).",
             "Target: the `motor_stall` alarm within %d strokes (no more than %d programmed strokes missed), at "
             "every rate: %s." % (TARGET_STALL_STROKES, TARGET_STALL_STROKES, _verdict(ok_all))]
    return ("Motor stall: the rotor stops turning at a seeded time, to the `motor_stall` alarm (%s)" % _seeds(n),
            ("program", "stroke every", "time to alarm", "driven", "missed", "programmed meanwhile",
             "missed <= %d" % TARGET_STALL_STROKES), rows, notes)


def _release_table(runs, n):
    rows = []
    for s, occl, _ in runs:
        done = [r for r in occl if "released_nl" in r]
        if not done:
            rows.append((s.name, "-", "no alarm", "", "", ""))
            continue
        # the seed with the largest excess, and the largest release (the same volume
        # at every seed when the alarm comes at the same stroke)
        w = max(done, key=lambda r: r["window_delivered_nl"] - r["window_programmed_nl"])
        excess = w["window_delivered_nl"] - w["window_programmed_nl"]
        released = max(r["released_nl"] for r in done)
        resumed = [r["resumed_ms"] for r in done]
        rows.append((s.name, _dur(min(r["hold_ms"] for r in done)),
                     "%s (%.0f strokes)" % (_ul(released), released / STROKE_NL),
                     "%s (%.2f strokes)" % (_ul(excess), excess / STROKE_NL),
                     "%s / %s" % (_ul(w["window_delivered_nl"]), _ul(w["window_programmed_nl"])),
                     "never" if None in resumed else _dur(max(resumed))))
    notes = ["Released = held in the line when it opened (boards.sim Fault.released_nl): at the patient within "
             "~0.1 s. Excess = delivered - programmed over the %d min after the release; negative: delivery "
             "resumed after the pressure had been seen back down, and the stop was not made up."
             % (RELEASE_WINDOW_MS // MIN_MS)]
    return ("Unintended bolus when the occlusion clears (%s)" % _seeds(n),
            ("program", "blocked for", "released at once", "excess in %d min" % (RELEASE_WINDOW_MS // MIN_MS),
             "delivered / programmed", "resumed after"), rows, notes)


def _false_alarm_table(days, seeds):
    rows = []
    total = 0
    sim_days = 0
    wall = 0.0
    for seed in range(1, seeds + 1):
        r = false_alarms(seed, days)
        codes = sorted(set(c for _, c in r["raised"]))
        total += len(r["raised"])
        sim_days += days
        wall += r["wall_s"]
        rows.append(("%d" % seed, "%d" % days, "%d" % len(r["raised"]), ", ".join(codes) or "-",
                     "%d" % r["refills"], "%.2f s" % r["wall_s"], "%.1f" % (days / r["wall_s"])))
    s = typical()
    notes = ["Target: %d false alarms in %d x %d simulated days: %s (%d raised). %.0f simulated days per wall "
             "second (CPython %d.%d, in process)." % (TARGET_FALSE_ALARMS, seeds, days,
                                                      _verdict(total <= TARGET_FALSE_ALARMS), total,
                                                      sim_days / wall, sys.version_info[0], sys.version_info[1])]
    return ("False alarms: %s, no faults, default sensor noise, CSF drift and coughs, clock set, refilled below "
            "%g mL" % (s.name, REFILL_BELOW_NL / 1e6),
            ("seed", "days", "alarms raised", "codes", "refills", "wall time", "sim days/s"), rows, notes)


if __name__ == "__main__":
    numbers = [int(x) for x in sys.argv[1:] if x.isdigit()]
    for title, header, rows, notes in tables(numbers[0] if numbers else 90, "--quick" in sys.argv):
        print(title)
        for row in rows:
            print(row)
        for line in notes:
            print(line)
