# Every alarm of the pump, raised end to end by its fault on the simulated Pico: the real
# shell (firmware/app.py) and core on the sim board, faults injected with board.faults
# (docs/simulator.md). Each test checks the alarm's event in the flash log, what it does
# to delivery (the board's truth: head strokes, line volumes), its annunciation, how it
# clears and that delivery resumes where docs/alarms.md says. The last tests run 90 clean
# days with the sim's default noise, drift and coughs, and see no alarm at all.
# The core's alarm logic alone is tested in host_tests/portable/test_alarms.py.
import pytest

import app
from boards.sim import Board, WatchdogReset, config
from boards.sim import run as simrun
from pump import alarms as A
from pump import wire
from pump.core import LOG_FILE, Pump

DAY_MS = 86400000
HOUR_MS = 3600000
MIN_MS = 60000
STROKE_NL = config.STROKE_NL
CLOCK = (9000, 0)  # a wall clock: day 9000 since 2000-01-01, midnight

# Three rates of baclofen: 10 uL/day (a stroke every 36 min), 0.4 mL/day (every 54 s),
# 2 mL/day (every 10.8 s).
LOW = {"drug": "baclofen", "conc_ug_per_ml": 2000, "dose_ug_per_day": 20}
TYPICAL = {"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 200}
HIGH = {"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 1000}
RATES = {"low": LOW, "typical": TYPICAL, "high": HIGH}


def nl_per_day(program):
    return program["dose_ug_per_day"] * 1000000 // program["conc_ug_per_ml"]


def stroke_ms(program):
    return DAY_MS * STROKE_NL // nl_per_day(program)


class RecordingLink:
    # The serial link, keeping what the firmware sends (events reach it even when the
    # flash cannot take them).
    def __init__(self):
        self.frames = []

    def read(self):
        return b""

    def wait(self, timeout_ms):
        return False

    def write(self, data):
        self.frames.append(data)


class Sim:
    # One simulated Pico running the firmware, as boards/sim/run.py runs it, with the
    # status frame once a day (the link is not what these tests look at).
    def __init__(self, tmp_path, program=TYPICAL, fill_nl=20000000, seed=1, clock=CLOCK, limits=None,
                 settle_ms=4 * HOUR_MS):
        self.link = RecordingLink()
        self.board = Board(str(tmp_path), self.link, seed=seed)
        self.board.head.reservoir_nl = fill_nl
        self.boots = 0
        self._boot()
        assert app.provision(self.app, program, fill_nl, limits=limits, clock=clock) is None
        # open-line readings for the occlusion detector's baseline (3 strokes at least)
        self.run_for(settle_ms)

    def _boot(self):
        # a first boot, or the boot after a watchdog reset (as boards/sim/run.py reboots):
        # the same board, a new firmware that restores itself from the flash
        b = self.board
        self.app = app.App(b, Pump(app.pump_config(b.config, DAY_MS)))
        self.app.start()
        self.boots += 1

    @property
    def pump(self):
        return self.app.pump

    @property
    def ms(self):
        return self.board.clock.ms

    def now(self):
        return self.board.ticks_ms()

    def run_until(self, end_ms, until=None):
        # The shell's loop up to board ms end_ms, or until until() holds after a pass
        # (then True). A watchdog reset boots the firmware again.
        b = self.board
        while True:
            w = self.app.step()
            if until is not None and until():
                return True
            if b.clock.ms >= end_ms:
                return False
            try:
                b.wait(min(w, end_ms - b.clock.ms))
            except WatchdogReset:
                self._boot()

    def run_for(self, ms, until=None):
        return self.run_until(self.ms + ms, until)

    def do(self, op, *args):
        # a pump operation as the console would ask it, then one pass of the loop to carry
        # out what it asked for (strokes, annunciation, flash)
        reason = getattr(self.pump, op)(self.now(), *args)
        self.app.step()
        return reason

    # -- what the firmware said and showed
    def logged(self):
        data = (self.board.storage.read(LOG_FILE + ".1") or b"") + (self.board.storage.read(LOG_FILE) or b"")
        return [f.body for f in wire.Reader(len(data) + 1).feed(data)]

    def sent(self):
        data = b"".join(self.link.frames)
        return [f.body for f in wire.Reader(len(data) + 1).feed(data)]

    def alarm_log(self, code=None):
        # the alarm events in the flash log: [(code, "raised" | "cleared", priority or None)]
        return [(e["code"], e["state"], e.get("priority")) for e in self.logged()
                if e.get("ev") == "alarm" and (code is None or e["code"] == code)]

    def active(self):
        return [a.code for a in self.pump.alarms.active]

    def shown(self):
        n = self.board.annunciator
        return (n.led, n.tone, n.tone_every)

    def running(self):
        return self.pump.state == "running"

    def stopped(self):
        return self.pump.state == "stopped"

    def strokes(self):
        return self.board.head.strokes_made


def has(sim, code):
    return lambda: code in sim.active()


def lacks(sim, code):
    return lambda: code not in sim.active()


def quiet_after_boot(sim):
    # the clinician set the clock at provisioning, so the boot's clock_not_set is gone
    assert sim.alarm_log()[:2] == [(A.CLOCK, "raised", "low"), (A.CLOCK, "cleared", None)]
    assert sim.active() == [] and sim.shown() == A.QUIET


# ---- occlusion ----------------------------------------------------------------------

@pytest.mark.parametrize("rate", sorted(RATES))
def test_a_full_occlusion_stops_within_three_strokes_and_resumes_without_a_burst(tmp_path, rate):
    program = RATES[rate]
    sim = Sim(tmp_path, program)
    quiet_after_boot(sim)
    line = sim.board.line
    blocked = sim.board.faults.add("occlusion", sim.ms, sim.ms + 4 * HOUR_MS)
    made = sim.strokes()
    assert sim.run_until(blocked.end_ms, sim.stopped)
    stopped_at = sim.ms
    into_blockage = sim.strokes() - made
    assert 1 <= into_blockage <= 3, into_blockage
    assert sim.pump.stop_reason == A.OCCLUSION
    assert sim.alarm_log(A.OCCLUSION) == [(A.OCCLUSION, "raised", "high")]
    assert sim.shown() == A.ANNUNCIATION[A.HIGH]
    # stopped: not a stroke more while the line stays blocked, and nothing reaches the
    # patient; the strokes pushed into the blockage wait in the line
    delivered = line.delivered_nl
    sim.run_until(blocked.end_ms - 1)
    assert sim.stopped() and sim.strokes() - made == into_blockage
    assert line.delivered_nl == delivered and line.stored_nl == into_blockage * STROKE_NL
    # the blockage clears: what was held is released at once, the alarm clears by itself
    # (pressure read every minute while stopped, median of three) and delivery resumes
    assert sim.run_until(blocked.end_ms + 3 * MIN_MS, sim.running)
    resumed_ms = sim.ms
    assert blocked.released_nl == into_blockage * STROKE_NL
    assert sim.alarm_log(A.OCCLUSION) == [(A.OCCLUSION, "raised", "high"), (A.OCCLUSION, "cleared", None)]
    assert sim.active() == [] and sim.shown() == A.QUIET
    # what the schedule programmed while stopped is logged, not made up
    resumed = [e for e in sim.logged() if e["ev"] == "resumed"]
    assert len(resumed) == 1
    stopped_ms = resumed[0]["stopped_ms"]
    assert stopped_ms == resumed_ms - stopped_at
    missed_ng = resumed[0]["missed_ng"]
    assert 0 <= missed_ng - stopped_ms * program["dose_ug_per_day"] * 1000 // DAY_MS <= 1, resumed[0]
    assert resumed[0]["missed_nl"] == missed_ng * 1000 // program["conc_ug_per_ml"]
    # the hour after: the programmed rate from the moment it resumed, no catch-up burst;
    # the patient gets the hour's volume plus at most what the line held
    made = sim.strokes()
    delivered = line.delivered_nl - blocked.released_nl
    sim.run_until(resumed_ms + HOUR_MS)
    hourly_nl = nl_per_day(program) // 24
    strokes_in_hour = sim.strokes() - made
    assert hourly_nl // STROKE_NL - 1 <= strokes_in_hour <= hourly_nl // STROKE_NL + 1, strokes_in_hour
    assert line.delivered_nl - delivered <= blocked.released_nl + hourly_nl + STROKE_NL
    assert sim.running() and sim.active() == []


@pytest.mark.parametrize("rate", ["typical", "high"])
def test_a_partial_occlusion_stops_delivery_at_the_rates_where_it_builds(tmp_path, rate):
    # half-life 120 s: the line settles at 546 mbar before each stroke at 0.4 mL/day and
    # at the head's limit at 2 mL/day (docs/simulator.md), far above the 300 mbar alarm
    program = RATES[rate]
    sim = Sim(tmp_path, program)
    line = sim.board.line
    partial = sim.board.faults.add("partial_occlusion", sim.ms, sim.ms + 6 * HOUR_MS)
    made = sim.strokes()
    assert sim.run_until(partial.end_ms, sim.stopped)
    assert sim.pump.stop_reason == A.OCCLUSION and sim.shown() == A.ANNUNCIATION[A.HIGH]
    assert sim.strokes() - made <= 10
    assert sim.alarm_log(A.OCCLUSION)[0] == (A.OCCLUSION, "raised", "high")
    # while it lasts the pump gives far less than programmed (it stops each time the
    # pressure builds, and resumes once it has drained), and the third occlusion within
    # the hour latches: one alarm for the episode, not one every few minutes
    sim.run_until(partial.end_ms)
    programmed = 6 * HOUR_MS * nl_per_day(program) // DAY_MS
    assert (sim.strokes() - made) * STROKE_NL < programmed // 2
    log = sim.alarm_log(A.OCCLUSION)
    assert [x[1] for x in log] == ["raised", "cleared", "raised", "cleared", "raised", "latched"], log
    # once the catheter is open again it waits for someone to look
    sim.run_for(10 * MIN_MS)
    assert sim.stopped() and sim.pump.stop_reason == A.OCCLUSION
    assert sim.do("ack") is None
    sim.run_for(MIN_MS)
    assert sim.running() and A.OCCLUSION not in sim.active()
    assert sim.alarm_log(A.OCCLUSION)[-1][1] == "cleared"
    n = len(sim.alarm_log(A.OCCLUSION))
    sim.run_for(6 * HOUR_MS)
    assert len(sim.alarm_log(A.OCCLUSION)) == n and sim.running()
    assert line.pumped_nl == line.delivered_nl + line.stored_nl


def test_a_partial_occlusion_at_a_low_rate_drains_between_strokes_and_raises_nothing(tmp_path):
    # 10 uL/day: 36 min between strokes, 18 half-lives of 120 s, so each stroke finds the
    # line drained and adds only its own 200 mbar (below the 300 mbar alarm)
    sim = Sim(tmp_path, LOW)
    line = sim.board.line
    partial = sim.board.faults.add("partial_occlusion", sim.ms, sim.ms + 2 * DAY_MS)
    made = sim.strokes()
    assert not sim.run_until(partial.end_ms, sim.stopped)
    assert A.OCCLUSION not in sim.active() and sim.alarm_log(A.OCCLUSION) == []
    # every programmed stroke was made and reached the patient, if a little late
    assert abs(sim.strokes() - made - 2 * nl_per_day(LOW) // STROKE_NL) <= 1
    assert line.delivered_nl >= line.pumped_nl - STROKE_NL
    assert sim.active() == [] and sim.shown() == A.QUIET


# ---- motor stall ----------------------------------------------------------------------

# the head's top rate: 30 mL/day (1500 ug/day at 50 ug/mL), a stroke every 0.72 s
TOP = {"drug": "baclofen", "conc_ug_per_ml": 50, "dose_ug_per_day": 1500}
TOP_LIMITS = {"max_rate_ng_per_day": 1500000, "max_24h_ng": 3000000, "max_bolus_ng": 200000}


@pytest.mark.parametrize("bolus", [False, True], ids=["top-rate basal", "fast bolus"])
def test_a_stall_is_seen_within_two_strokes_at_the_heads_top_rate(tmp_path, bolus):
    # Strokes 0.72 s apart (or a bolus at the head's top rate): a confirmation window
    # longer than that, moved on by every new stroke, never closed, and a stalled motor
    # was never reported. The window is now shorter than a stroke interval, and it does
    # not move with new strokes (pump.engine._commit).
    sim = Sim(tmp_path, TOP if not bolus else TYPICAL, limits=TOP_LIMITS, settle_ms=10 * MIN_MS)
    if bolus:
        assert sim.do("bolus_request", 100000, 10) is None  # 100 ug over 10 min at 500 ug/mL
        sim.run_for(MIN_MS)
    pump = sim.pump
    assert pump.bolus is not None or not bolus
    stall = sim.board.faults.add("stall", sim.ms, sim.ms + HOUR_MS)
    assert sim.run_until(stall.end_ms, sim.stopped)
    assert pump.stop_reason == A.STALL and sim.ms - stall.start_ms < 5000
    # strokes sent to the stalled motor: two programmed ones and the retry
    assert sim.board.head.rotor_faults.strokes_stalled <= 3

def test_a_stall_stops_within_two_strokes_counts_nothing_and_waits_for_an_acknowledgement(tmp_path):
    sim = Sim(tmp_path, TYPICAL)
    head, line, pump = sim.board.head, sim.board.line, sim.pump
    assert pump.status()["delivered_nl"] == line.delivered_nl  # confirmed strokes = the truth
    stall = sim.board.faults.add("stall", sim.ms, sim.ms + 2 * HOUR_MS)
    programmed = pump.basal.strokes
    delivered = line.delivered_nl
    assert sim.run_until(stall.end_ms, sim.stopped)
    assert sim.pump.stop_reason == A.STALL and sim.shown() == A.ANNUNCIATION[A.HIGH]
    assert sim.alarm_log(A.STALL) == [(A.STALL, "raised", "high")]
    # one retry: two programmed strokes missed (three attempts), none of them counted
    assert pump.basal.strokes - programmed <= 2
    assert head.rotor_faults.strokes_stalled <= 3
    unconfirmed = [e for e in sim.logged() if e["ev"] == "strokes_unconfirmed"]
    assert [e["retry"] for e in unconfirmed] == [True, False]
    assert line.delivered_nl == delivered and pump.status()["delivered_nl"] == delivered
    assert pump.status()["strokes_unconfirmed"] == head.rotor_faults.strokes_stalled
    # acknowledged while the rotor is still stuck: tried again, stalled again
    sim.run_for(10 * MIN_MS)
    assert sim.do("ack") is None
    assert sim.running() and A.STALL not in sim.active()
    stalled = head.rotor_faults.strokes_stalled
    assert sim.run_for(10 * MIN_MS, sim.stopped)
    assert sim.pump.stop_reason == A.STALL
    assert 1 <= head.rotor_faults.strokes_stalled - stalled <= 3
    assert sim.alarm_log(A.STALL) == [(A.STALL, "raised", "high"), (A.STALL, "cleared", None),
                                      (A.STALL, "raised", "high")]
    # the rotor is free again, but nobody has looked: still stopped
    sim.run_until(stall.end_ms + HOUR_MS)
    assert sim.stopped() and sim.pump.stop_reason == A.STALL
    assert line.delivered_nl == delivered
    assert sim.do("ack") is None
    assert sim.running() and sim.active() == [] and sim.shown() == A.QUIET
    made = sim.strokes()
    sim.run_for(HOUR_MS)
    assert abs(sim.strokes() - made - HOUR_MS // stroke_ms(TYPICAL)) <= 1
    assert sim.pump.status()["delivered_nl"] == line.delivered_nl  # still only confirmed strokes


@pytest.mark.parametrize("percent", [5, 10])
def test_missed_pulses_never_make_the_head_pump_more_than_programmed(tmp_path, percent):
    # Pulses lost for an hour: after each lone miss the next stroke is the retry, nothing
    # is commanded again, so the head pumps what was programmed whether the first stroke
    # turned or not. The unconfirmed strokes are debited from what is left (they
    # did turn): the reservoir is never over-stated. A retry that is missed as well is a
    # stall (the next test).
    sim = Sim(tmp_path, TYPICAL)
    head, line = sim.board.head, sim.board.line
    pumped = line.pumped_nl
    programmed = sim.pump.basal.strokes
    sim.board.faults.add("missed_pulses", sim.ms, sim.ms + HOUR_MS, percent=percent)
    sim.run_for(HOUR_MS)
    missed = head.rotor_faults.pulses_missed
    assert missed >= 3
    unconfirmed = [e for e in sim.logged() if e["ev"] == "strokes_unconfirmed"]
    assert len(unconfirmed) == missed
    if not sim.stopped():
        assert all(e["retry"] for e in unconfirmed)
        # three misses within a couple of hundred strokes: the sensor is not to be trusted
        assert sim.active() == [A.ROTOR] and sim.running()
    assert line.pumped_nl - pumped <= (sim.pump.basal.strokes - programmed + 1) * STROKE_NL
    assert sim.pump.status()["reservoir_nl"] <= head.reservoir_nl
    assert sim.pump.status()["strokes_unconfirmed"] == missed
    assert line.pumped_nl - sim.pump.status()["delivered_nl"] == missed * STROKE_NL


def test_a_missed_pulse_and_a_missed_retry_raise_the_stall_alarm(tmp_path):
    # half the pulses lost: before long a retry goes unconfirmed too, and docs/alarms.md
    # says that is a stall, though the fluid moved (the sensor cannot tell)
    sim = Sim(tmp_path, TYPICAL)
    head, line = sim.board.head, sim.board.line
    lossy = sim.board.faults.add("missed_pulses", sim.ms, sim.ms + HOUR_MS, percent=50)
    assert sim.run_until(lossy.end_ms, sim.stopped)
    assert sim.pump.stop_reason == A.STALL
    unconfirmed = [e["retry"] for e in sim.logged() if e["ev"] == "strokes_unconfirmed"]
    assert unconfirmed[-1] is False and all(unconfirmed[:-1])
    assert line.pumped_nl - sim.pump.status()["delivered_nl"] == head.rotor_faults.pulses_missed * STROKE_NL
    made = sim.strokes()
    sim.run_until(lossy.end_ms + 10 * MIN_MS)
    assert sim.stopped() and sim.strokes() == made  # stays stopped until someone looks
    assert sim.do("ack") is None
    assert sim.running() and sim.active() == []
    sim.run_for(HOUR_MS)
    assert sim.running() and sim.alarm_log(A.STALL) == [(A.STALL, "raised", "high"), (A.STALL, "cleared", None)]


# ---- pressure sensor --------------------------------------------------------------------

@pytest.mark.parametrize("kind, params, within_readings, seed", [
    ("sensor_disconnected", {"rail": "low"}, 1, 1),
    ("sensor_disconnected", {"rail": "high"}, 1, 1),
    ("sensor_stuck", {}, 65, 1),  # 64 identical readings in a row
    # +-240 mbar: 6 alternating jumps of over 100 mbar, each calm reading taking one back
    # (10 readings with seed 1, 51 with seed 6: the slowest of seeds 1-10)
    ("sensor_noisy", {}, 60, 1),
    ("sensor_noisy", {}, 60, 6),
])
def test_a_pressure_sensor_fault_is_a_medium_alarm_and_delivery_goes_on(tmp_path, kind, params, within_readings,
                                                                        seed):
    sim = Sim(tmp_path, TYPICAL, seed=seed)
    period = stroke_ms(TYPICAL)
    fault = sim.board.faults.add(kind, sim.ms, sim.ms + 3 * HOUR_MS, **params)
    made = sim.strokes()
    assert sim.run_until(fault.end_ms, has(sim, A.SENSOR))
    assert sim.ms - fault.start_ms <= within_readings * period + period
    assert sim.shown() == A.ANNUNCIATION[A.MEDIUM]
    sim.run_until(fault.end_ms - 1)
    # one alarm for the whole fault (no chatter), delivery at the programmed rate
    assert sim.alarm_log(A.SENSOR) == [(A.SENSOR, "raised", "medium")]
    assert A.SENSOR in sim.active() and sim.running()
    assert abs(sim.strokes() - made - 3 * HOUR_MS // period) <= 1
    assert A.OCCLUSION not in sim.active() and sim.alarm_log(A.OCCLUSION) == []
    # a sensor that reads true again clears it (a noisy one after 16 calm readings)
    assert sim.run_for(20 * period, lacks(sim, A.SENSOR))
    assert sim.alarm_log(A.SENSOR) == [(A.SENSOR, "raised", "medium"), (A.SENSOR, "cleared", None)]
    assert sim.active() == [] and sim.shown() == A.QUIET
    # and occlusion detection is back: a blockage now is caught as ever
    blocked = sim.board.faults.add("occlusion", sim.ms, sim.ms + HOUR_MS)
    made = sim.strokes()
    assert sim.run_until(blocked.end_ms, sim.stopped)
    assert sim.pump.stop_reason == A.OCCLUSION and sim.strokes() - made <= 3


# ---- supply -----------------------------------------------------------------------------

def test_a_discharging_battery_warns_then_stops_on_time_and_clears_with_hysteresis(tmp_path):
    sim = Sim(tmp_path, TYPICAL)
    faults, truth = sim.board.faults, sim.board.battery.true_mv
    t0 = sim.ms
    # 4.2 V falling 100 mV/h: 3.5 V after 7 h, 3.3 V after 9 h; then a supply that sits
    # just above each threshold, inside its hysteresis and beyond it; then USB again
    faults.add("battery_discharge", t0, t0 + 14 * HOUR_MS)
    faults.add("battery_discharge", t0 + 10 * HOUR_MS, t0 + 11 * HOUR_MS, start_mv=3350, mv_per_h=0)
    faults.add("battery_discharge", t0 + 11 * HOUR_MS, t0 + 12 * HOUR_MS, start_mv=3450, mv_per_h=0)
    faults.add("battery_discharge", t0 + 12 * HOUR_MS, t0 + 13 * HOUR_MS, start_mv=3550, mv_per_h=0)
    faults.add("battery_discharge", t0 + 13 * HOUR_MS, t0 + 14 * HOUR_MS, start_mv=3650, mv_per_h=0)
    sample_ms, noise_mv = 10 * MIN_MS, 8

    def crossed(level_mv):
        # the first 10-minute reading at or below the level: true voltage within the
        # reading's noise of it, and the reading before still above it
        assert truth(sim.ms) <= level_mv + noise_mv
        assert truth(sim.ms - sample_ms) > level_mv - noise_mv
        assert abs(sim.ms - t0 - (4200 - level_mv) * HOUR_MS // 100) <= sample_ms + 5 * MIN_MS

    assert sim.run_until(t0 + 14 * HOUR_MS, has(sim, A.BATTERY_LOW))
    crossed(3500)
    assert sim.alarm_log(A.BATTERY_LOW) == [(A.BATTERY_LOW, "raised", "medium")]
    assert sim.running() and sim.shown() == A.ANNUNCIATION[A.MEDIUM]
    made, low_at = sim.strokes(), sim.ms
    assert sim.run_until(t0 + 14 * HOUR_MS, has(sim, A.END_OF_SERVICE))
    crossed(3300)
    assert abs(sim.strokes() - made - (sim.ms - low_at) // stroke_ms(TYPICAL)) <= 1  # medium: it went on
    assert sim.stopped() and sim.pump.stop_reason == A.END_OF_SERVICE
    assert sim.shown() == A.ANNUNCIATION[A.HIGH]
    assert sim.alarm_log(A.END_OF_SERVICE) == [(A.END_OF_SERVICE, "raised", "high")]
    made = sim.strokes()
    # 3.35 V: above the end threshold, inside its 100 mV: still stopped
    sim.run_until(t0 + 11 * HOUR_MS - 1)
    assert sim.stopped() and sim.strokes() == made
    # 3.45 V: out of end of service (delivery resumes), still low
    sim.run_until(t0 + 12 * HOUR_MS - 1)
    assert sim.running() and sim.active() == [A.BATTERY_LOW]
    assert sim.alarm_log(A.END_OF_SERVICE)[-1] == (A.END_OF_SERVICE, "cleared", None)
    assert sim.shown() == A.ANNUNCIATION[A.MEDIUM]
    # 3.55 V: above the low threshold, inside its 100 mV: still low
    sim.run_until(t0 + 13 * HOUR_MS - 1)
    assert sim.active() == [A.BATTERY_LOW]
    # 3.65 V: clear
    sim.run_until(t0 + 14 * HOUR_MS - 1)
    assert sim.active() == [] and sim.shown() == A.QUIET
    assert sim.alarm_log(A.BATTERY_LOW) == [(A.BATTERY_LOW, "raised", "medium"), (A.BATTERY_LOW, "cleared", None)]
    assert sim.running()


def test_usb_back_clears_both_supply_alarms_within_a_reading(tmp_path):
    sim = Sim(tmp_path, TYPICAL)
    t0 = sim.ms
    drain = sim.board.faults.add("battery_discharge", t0, t0 + 10 * HOUR_MS)
    sim.run_until(drain.end_ms)
    assert sim.stopped() and set(sim.active()) == {A.BATTERY_LOW, A.END_OF_SERVICE}
    assert sim.run_for(10 * MIN_MS + 1, lambda: sim.active() == [])
    assert sim.running() and sim.shown() == A.QUIET
    assert len([e for e in sim.logged() if e["ev"] == "resumed"]) == 1


# ---- watchdog reset and latches ---------------------------------------------------------

def test_a_watchdog_reset_from_the_command_line_is_an_alarm_and_therapy_goes_on(tmp_path):
    a = simrun.main(["--link", "null", "--days", "1", "--flash", str(tmp_path), "--program", "baclofen:500:200",
                     "--status-ms", "86400000", "--fault", "watchdog_reset:6"])
    b, p = a.board, a.pump
    assert b.clock.ms == DAY_MS and b.watchdog.caused_reset()
    log = [f.body for f in wire.Reader(1 << 20).feed(b.storage.read(LOG_FILE))]
    alarms = [(e["code"], e["state"]) for e in log if e.get("ev") == "alarm"]
    assert (A.WATCHDOG, "raised") in alarms
    assert [e["priority"] for e in log if e.get("ev") == "alarm" and e["code"] == A.WATCHDOG] == ["medium"]
    # medium: delivery went on through the day, a stroke or two lost at the reset
    assert p.state == "running" and A.WATCHDOG in [x.code for x in p.alarms.active]
    per_day = DAY_MS // stroke_ms(TYPICAL)
    assert per_day - 3 <= b.head.strokes_made <= per_day + 1
    assert b.annunciator.led == A.ANNUNCIATION[A.MEDIUM][0]
    assert p.ack(b.ticks_ms()) is None
    a.step()
    assert A.WATCHDOG not in [x.code for x in p.alarms.active]


def test_a_watchdog_reset_is_acknowledged_and_the_clock_must_be_set_again(tmp_path):
    sim = Sim(tmp_path, TYPICAL)
    sim.board.faults.add("watchdog_reset", sim.ms + HOUR_MS)
    made = sim.strokes()
    sim.run_for(2 * HOUR_MS)
    assert sim.boots == 2 and sim.running()
    assert abs(sim.strokes() - made - 2 * HOUR_MS // stroke_ms(TYPICAL)) <= 2
    assert sim.alarm_log(A.WATCHDOG) == [(A.WATCHDOG, "raised", "medium")]
    # the wall clock came back from the flash, short of the time without power
    assert set(sim.active()) == {A.WATCHDOG, A.CLOCK}
    assert sim.shown() == A.ANNUNCIATION[A.MEDIUM]
    assert sim.do("ack") is None
    assert sim.active() == [A.CLOCK] and sim.shown() == A.ANNUNCIATION[A.LOW]
    assert sim.do("set_clock", CLOCK[0] + 1, 0) is None
    assert sim.active() == [] and sim.shown() == A.QUIET and sim.running()


@pytest.mark.parametrize("kind", ["occlusion", "stall"])
def test_an_alarm_that_stops_delivery_survives_a_watchdog_reset(tmp_path, kind):
    sim = Sim(tmp_path, TYPICAL)
    code = A.OCCLUSION if kind == "occlusion" else A.STALL
    fault = sim.board.faults.add(kind, sim.ms, sim.ms + 2 * HOUR_MS)
    assert sim.run_until(fault.end_ms, sim.stopped)
    attempts = sim.strokes() + sim.board.head.rotor_faults.strokes_stalled
    sim.board.faults.add("watchdog_reset", sim.ms + 10 * MIN_MS)
    sim.run_for(20 * MIN_MS)
    assert sim.boots == 2
    # restored from the flash: still stopped for the same alarm, not a stroke tried, and
    # not raised a second time
    assert sim.stopped() and sim.pump.stop_reason == code
    assert sim.strokes() + sim.board.head.rotor_faults.strokes_stalled == attempts
    assert sim.alarm_log(code) == [(code, "raised", "high")]
    assert sim.shown() == A.ANNUNCIATION[A.HIGH]
    sim.run_until(fault.end_ms + 5 * MIN_MS)
    if kind == "occlusion":
        assert sim.running() and code not in sim.active()  # the line is open: it clears
    else:
        assert sim.stopped() and code in sim.active()  # someone has to look
        assert sim.do("ack") is None
        assert sim.running() and code not in sim.active()
    assert sim.alarm_log(code)[-1] == (code, "cleared", None)


# ---- the reservoir and the refill ------------------------------------------------------

def test_the_reservoir_alarms_by_days_then_volume_then_empty_and_a_refill_clears_them(tmp_path):
    # 4 mL at 0.4 mL/day, 0.5 mL unusable: the projection reaches the floor within 7 days
    # first (about 2.8 mL above it), then the volume reaches 2 mL, then the floor
    floor_nl = 500000
    sim = Sim(tmp_path, TYPICAL, fill_nl=4000000, settle_ms=MIN_MS)
    pump, head = sim.pump, sim.board.head
    assert sim.do("set_alarm_settings", {"low_reservoir_nl": 2000000, "low_days": 7,
                                         "empty_floor_nl": floor_nl}) is None
    per_day = nl_per_day(TYPICAL)

    assert sim.run_for(10 * DAY_MS, has(sim, A.LOW_DAYS))
    left = pump.status()["reservoir_nl"]
    assert pump.days_to_empty <= 7 and left > 2000000  # by projection, not by volume
    assert 7 * per_day <= left - floor_nl <= 8 * per_day + per_day // 24
    assert sim.alarm_log(A.LOW_DAYS) == [(A.LOW_DAYS, "raised", "medium")]
    assert sim.running() and sim.shown() == A.ANNUNCIATION[A.MEDIUM]

    assert sim.run_for(10 * DAY_MS, has(sim, A.LOW_VOLUME))
    assert 2000000 - STROKE_NL < pump.status()["reservoir_nl"] <= 2000000
    assert sim.alarm_log(A.LOW_VOLUME) == [(A.LOW_VOLUME, "raised", "medium")]
    assert sim.running()

    assert sim.run_for(10 * DAY_MS, sim.stopped)
    assert pump.stop_reason == A.EMPTY and sim.shown() == A.ANNUNCIATION[A.HIGH]
    assert sim.alarm_log(A.EMPTY) == [(A.EMPTY, "raised", "high")]
    # at the floor (once the stroke in flight is made): not a stroke below it, by the
    # pump's account and in truth
    sim.run_for(MIN_MS)
    assert floor_nl <= head.reservoir_nl < floor_nl + STROKE_NL
    assert pump.status()["reservoir_nl"] == head.reservoir_nl
    made = sim.strokes()
    sim.run_for(DAY_MS)
    assert sim.strokes() == made and sim.stopped()
    assert set(sim.active()) == {A.LOW_DAYS, A.LOW_VOLUME, A.EMPTY}

    # the refill: what is left is withdrawn (as the pump expects), 20 mL go in
    withdrawn = head.reservoir_nl
    head.reservoir_nl = 20000000
    assert sim.do("refill", withdrawn, 20000000, 500, 500) is None
    for code in (A.LOW_DAYS, A.LOW_VOLUME, A.EMPTY):
        assert sim.alarm_log(code)[-1] == (code, "cleared", None)
    assert A.RESIDUAL not in sim.active() and sim.active() == []
    assert sim.running() and sim.shown() == A.QUIET
    made = sim.strokes()
    sim.run_for(DAY_MS)
    assert abs(sim.strokes() - made - per_day // STROKE_NL) <= 1
    assert sim.active() == []


def test_a_refill_checks_the_residual_and_the_concentration_entered_twice(tmp_path):
    sim = Sim(tmp_path, TYPICAL)
    pump, head = sim.pump, sim.board.head
    sim.run_for(2 * DAY_MS)
    expected = pump.status()["reservoir_nl"]
    assert expected == head.reservoir_nl
    # two different concentrations: refused, nothing changes
    reason = sim.do("refill", expected, 20000000, 500, 5000)
    assert reason is not None and "500" in reason and "5000" in reason
    assert pump.status()["reservoir_nl"] == expected and sim.active() == []
    assert not [e for e in sim.logged() if e["ev"] == "refill"]
    # 2.5 mL less withdrawn than the pump expects (the tolerance: a tenth of 19.2 mL):
    # the refill goes ahead, flagged
    head.reservoir_nl = 20000000
    assert sim.do("refill", expected - 2500000, 20000000, 500, 500) is None
    assert pump.status()["reservoir_nl"] == 20000000
    assert sim.alarm_log(A.RESIDUAL) == [(A.RESIDUAL, "raised", "medium")]
    refill = [e for e in sim.logged() if e["ev"] == "refill"][-1]
    assert refill["mismatch"] is True and refill["difference_nl"] == -2500000
    assert sim.shown() == A.ANNUNCIATION[A.MEDIUM]
    made = sim.strokes()
    sim.run_for(HOUR_MS)
    assert sim.running() and sim.strokes() > made  # medium: delivery goes on
    assert sim.do("ack") is None
    assert sim.active() == [] and sim.shown() == A.QUIET
    assert sim.alarm_log(A.RESIDUAL)[-1] == (A.RESIDUAL, "cleared", None)


# ---- storage, clock, limits, silence -----------------------------------------------------

def test_a_failing_flash_is_a_high_alarm_therapy_goes_on_and_ack_clears_it_once_writes_work(tmp_path, monkeypatch):
    sim = Sim(tmp_path, TYPICAL)
    storage = sim.board.storage
    working = (storage.write, storage.append)

    def fail(*args):
        raise OSError(28, "no space left on the flash")

    monkeypatch.setattr(storage, "write", fail)
    monkeypatch.setattr(storage, "append", fail)
    made, t0 = sim.strokes(), sim.ms
    assert sim.run_for(2 * HOUR_MS, has(sim, A.STORAGE))  # the hourly state write failed
    sim.app.step()  # raised inside the pass's writes: shown by the next pass
    assert sim.shown() == A.ANNUNCIATION[A.HIGH]
    sim.run_for(2 * HOUR_MS)
    assert sim.running() and abs(sim.strokes() - made - (sim.ms - t0) // stroke_ms(TYPICAL)) <= 1
    raised = [e for e in sim.sent() if e.get("ev") == "alarm" and e["code"] == A.STORAGE]
    assert raised[0]["state"] == "raised" and raised[0]["priority"] == "high"
    # acknowledged while the flash still fails: the acknowledgement cannot be logged either
    assert sim.do("ack") is None
    assert A.STORAGE in sim.active()
    # writes work again: the acknowledgement clears it, and the log says so
    monkeypatch.setattr(storage, "write", working[0])
    monkeypatch.setattr(storage, "append", working[1])
    assert sim.do("ack") is None
    assert sim.active() == [] and sim.shown() == A.QUIET
    assert sim.alarm_log(A.STORAGE)[-1] == (A.STORAGE, "cleared", None)
    sim.run_for(2 * HOUR_MS)
    assert sim.active() == [] and sim.running()


def test_the_clock_not_set_alarm_is_low_and_goes_when_the_clock_is_set(tmp_path):
    sim = Sim(tmp_path, TYPICAL, clock=None)
    made = sim.strokes()
    sim.run_for(HOUR_MS)
    assert sim.active() == [A.CLOCK] and sim.shown() == A.ANNUNCIATION[A.LOW]
    assert sim.running() and sim.strokes() - made >= HOUR_MS // stroke_ms(TYPICAL) - 1
    assert sim.alarm_log(A.CLOCK) == [(A.CLOCK, "raised", "low")]
    assert sim.do("set_clock", *CLOCK) is None
    assert sim.active() == [] and sim.shown() == A.QUIET
    assert sim.alarm_log(A.CLOCK)[-1] == (A.CLOCK, "cleared", None)


def test_a_bolus_refused_by_the_24h_limit_is_a_low_alarm_until_acknowledged(tmp_path):
    limits = {"max_rate_ng_per_day": 300000, "max_24h_ng": 250000, "max_bolus_ng": 100000}
    sim = Sim(tmp_path, TYPICAL, limits=limits)
    made = sim.strokes()
    reason = sim.do("bolus_request", 60000, 30)  # 200 ug basal + 60 ug > 250 ug in 24 h
    assert reason is not None and "24 h" in reason
    assert sim.active() == [A.LIMIT] and sim.shown() == A.ANNUNCIATION[A.LOW]
    assert sim.alarm_log(A.LIMIT) == [(A.LIMIT, "raised", "low")]
    assert [e["limit"] for e in sim.logged() if e["ev"] == "refused"] == ["max_24h"]
    sim.run_for(HOUR_MS)
    assert sim.running() and abs(sim.strokes() - made - HOUR_MS // stroke_ms(TYPICAL)) <= 1  # no bolus
    assert sim.do("ack") is None
    assert sim.active() == [] and sim.shown() == A.QUIET
    assert sim.do("bolus_request", 40000, 30) is None  # within the limit: given
    assert sim.active() == []


def test_a_silence_mutes_the_tone_not_the_light_for_at_most_15_minutes(tmp_path):
    sim = Sim(tmp_path, TYPICAL)
    blocked = sim.board.faults.add("occlusion", sim.ms, sim.ms + 2 * HOUR_MS)
    assert sim.run_until(blocked.end_ms, sim.stopped)
    led, tone, every = A.ANNUNCIATION[A.HIGH]
    assert sim.shown() == (led, tone, every)
    assert sim.do("silence", 16) is not None  # beyond 15 minutes: refused
    assert sim.shown() == (led, tone, every)
    assert sim.do("silence", 15) is None
    assert sim.shown() == (led, 0, every)  # the light stays
    silenced = sim.ms
    sim.run_until(silenced + 15 * MIN_MS - 1)
    assert sim.shown() == (led, 0, every) and sim.stopped()
    sim.run_until(silenced + 15 * MIN_MS)
    assert sim.shown() == (led, tone, every)  # still active: it sounds again
    assert [e["ev"] for e in sim.logged() if e["ev"].startswith("silence")] == ["silence", "silence_end"]
    # a new alarm during a silence sounds at once (the battery, here)
    assert sim.do("silence", 10) is None
    sim.board.faults.add("battery_discharge", sim.ms, None, start_mv=3450, mv_per_h=0)
    assert sim.run_for(10 * MIN_MS, has(sim, A.BATTERY_LOW))
    assert sim.shown() == (led, tone, every)  # the highest priority, sounding


# ---- a clean run --------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ninety_clean_days_raise_no_alarm(tmp_path, seed):
    # The typical program with the clock set, the sim's own sensor noise, CSF drift and
    # coughs, on USB, refilled (with the residual withdrawn) before the reservoir gets low:
    # not one alarm in 90 days, and the dose delivered.
    sim = Sim(tmp_path, TYPICAL, seed=seed, settle_ms=0)
    head, line = sim.board.head, sim.board.line
    refills = 0

    def refill_due():
        return head.reservoir_nl < 5000000  # 12 days of drug: before either low alarm

    end = 90 * DAY_MS
    while sim.run_until(end, refill_due):
        withdrawn = head.reservoir_nl
        head.reservoir_nl = 20000000
        assert sim.do("refill", withdrawn, 20000000, 500, 500) is None
        refills += 1
    assert refills == 2
    quiet_after_boot(sim)
    assert sim.alarm_log()[2:] == []
    assert sim.board.annunciator.changes == 2  # on for clock_not_set at boot, off at provisioning
    status = sim.pump.status()
    assert sim.running() and status["strokes_unconfirmed"] == 0 and status["reservoir_nl"] == head.reservoir_nl
    assert [e["mismatch"] for e in sim.logged() if e["ev"] == "refill"] == [False, False]
    # the dose: 0.4 mL a day, to the stroke
    assert abs(line.pumped_nl - 90 * nl_per_day(TYPICAL)) <= STROKE_NL
    assert line.backflow_nl == 0 and line.pumped_nl == line.delivered_nl + line.stored_nl
