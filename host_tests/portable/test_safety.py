# Combinations that broke the pump's promises: operations while delivery is stopped or
# idle, limits changed under a pending titration, unlucky tick values, alarms acknowledged
# at the wrong moment, refills with strokes still turning. Each test names the promise;
# docs/hazards.md lists the hazard each one guards.
from corekit import BACLOFEN_500, Bench, make_pump
from pump import alarms as A
from pump import ticks

DAY_MS = 86400000
HOUR_MS = 3600000
MIN_MS = 60000
STROKE_MS = 54000  # 200 ug/day of 500 ug/mL: a 250 nL stroke every 54 s
WRAP = 1 << 30
KEEP = 30  # bodies a bench keeps (two benches live at once across a restart)
START = (1 << 30) - 10000
BIG_LIMITS = {"max_rate_ng_per_day": 3000000, "max_24h_ng": 5000000, "max_bolus_ng": 1000000}
PATIENT = {"dose_ng": 25000, "duration_min": 10, "lockout_min": 60, "max_per_24h": 4}


def _running(program=BACLOFEN_500, fill_nl=20000000, start=None, clock=(9000, 0), limits=None):
    b = Bench(make_pump(), keep=KEEP) if start is None else Bench(make_pump(), start_ticks=start % WRAP, keep=KEEP)
    b.boot()
    p = b.pump
    if limits is not None:
        assert p.set_limits(b.board_now, limits) is None
    if clock is not None:
        assert p.set_clock(b.board_now, clock[0], clock[1]) is None
    if fill_nl:
        assert p.fill(b.board_now, fill_nl, program["conc_ug_per_ml"]) is None
    reason = p.set_program(b.board_now, program)
    assert reason is None, reason
    return b, p


def _active(p):
    return [a.code for a in p.alarms.active]


def _events(b, name):
    b._collect()
    return b.bodies("event", name)


def _occlude_until_stopped(b, p):
    b.occluded = True
    for _ in range(20):
        b.advance(STROKE_MS)
        if p.state == "stopped":
            return
    raise AssertionError("no occlusion stop")


def _open_line(b):
    b.occluded = False
    b.line_mbar = 0


# ---- 1, 2: a bolus is not queued behind a stop --------------------------------------

def test_a_bolus_asked_for_while_delivery_is_stopped_is_refused_and_nothing_bursts_at_the_resume():
    for stop in ("occlusion", "stall", "empty"):
        b, p = _running(fill_nl=4000000 if stop == "empty" else 20000000)
        b.advance(10 * STROKE_MS)
        if stop == "occlusion":
            _occlude_until_stopped(b, p)
        elif stop == "stall":
            b.motor_turns = False
            b.advance(5 * STROKE_MS)
        else:
            assert p.set_alarm_settings(b.board_now, {"low_reservoir_nl": 3900000, "low_days": 0,
                                                      "empty_floor_nl": 3900000}) is None
            b.advance(2 * DAY_MS)
        assert p.state == "stopped", (stop, p.state)
        reason = p.bolus_request(b.board_now, 50000, 30)
        assert reason is not None and "stopped" in reason, (stop, reason)
        assert p.bolus is None
        b.advance(30 * MIN_MS)
        # the stop ends: the basal resumes at its rate, no bolus strokes were owed
        if stop == "occlusion":
            _open_line(b)
            b.advance(3 * MIN_MS)
        elif stop == "stall":
            b.motor_turns = True
            assert p.ack(b.board_now) is None
        else:
            assert p.refill(b.board_now, p.reservoir.volume_nl, 20000000, 500, 500) is None
        assert p.state == "running", (stop, p.state, _active(p))
        t = b.turned
        b.advance(10 * MIN_MS)
        assert b.turned - t <= 12, (stop, b.turned - t)  # 10 min at one stroke a 54 s, plus a retry


def test_a_patient_bolus_while_stopped_is_refused_with_the_reason():
    b, p = _running(dict(BACLOFEN_500, patient_bolus=PATIENT))
    b.advance(10 * STROKE_MS)
    _occlude_until_stopped(b, p)
    reason = p.patient_bolus(b.board_now)
    assert reason is not None and "occlusion" in reason, reason
    assert p.patient_times == []  # a refused request does not count toward the cap


def test_a_bolus_on_an_idle_pump_is_refused_and_a_later_program_gives_no_burst():
    # programmed, never filled: idle
    b, p = _running(fill_nl=0)
    assert p.state == "idle"
    reason = p.bolus_request(b.board_now, 50000, 30)
    assert reason is not None and "idle" in reason, reason
    b.advance(HOUR_MS)
    assert p.fill(b.board_now, 20000000, 500) is None
    t = b.turned
    b.advance(10 * MIN_MS)
    assert b.turned - t <= 12, b.turned - t


def test_a_bolus_on_a_pump_that_was_never_filled_is_refused_not_a_crash():
    b, p = _running(dict(BACLOFEN_500, patient_bolus=PATIENT), fill_nl=0)
    assert p.bolus_request(b.board_now, 50000, 30) is not None
    assert p.patient_bolus(b.board_now) is not None
    assert p.prime(b.board_now) is not None


# ---- 3: limits hold for what is pending too ------------------------------------------

def test_limits_lowered_below_a_pending_titration_are_refused_and_a_titration_is_checked_when_it_applies():
    b, p = _running(limits=BIG_LIMITS)
    assert p.titrate(b.board_now, daily_ng=400000, in_min=60) is None
    reason = p.set_limits(b.board_now, {"max_rate_ng_per_day": 250000, "max_24h_ng": 5000000,
                                        "max_bolus_ng": 1000000})
    assert reason is not None and "titration" in reason, reason
    assert p.limits.max_rate_ng_per_day == 3000000
    b.advance(2 * HOUR_MS)
    assert p.basal.rate == 400000  # the titration the limits allow, at its time


def test_a_rate_above_the_maximum_never_runs_whatever_put_it_there():
    b, p = _running(limits=BIG_LIMITS)
    assert p.titrate(b.board_now, daily_ng=400000, in_min=60) is None
    # limits lowered behind the checks' back (a defect elsewhere, a damaged state)
    p.limits.max_rate_ng_per_day = 250000
    b.advance(2 * HOUR_MS)
    assert p.basal.rate <= 250000, p.basal.rate
    assert A.LIMIT in _active(p)


# ---- 5: tick 0 is a time like any other ----------------------------------------------

def _landing_start(offset_ms, signed_target):
    # the board start tick that puts an instant `offset_ms` after the start on signed tick
    # `signed_target`
    return (ticks.to_board(signed_target) - offset_ms) % WRAP


def test_a_silence_that_ends_on_signed_tick_0_ends():
    b, p = _running(start=_landing_start(10 * MIN_MS, 0), clock=None)  # clock_not_set: something to silence
    assert p.silence(b.board_now, 10) is None
    assert p.silence_until == 0 or ticks.diff(p.silence_until, 0) == 0
    b.advance(11 * MIN_MS)
    assert not p.alarms.silenced
    assert len(_events(b, "silence_end")) == 1


def test_a_flex_step_at_signed_tick_0_is_taken():
    # 05:00; the step at 06:00 lands on signed tick 0
    program = {"drug": "baclofen", "conc_ug_per_ml": 500,
               "profiles": {"d": [[0, 100000], [360, 1000000], [420, 100000]]}}
    b, p = _running(program, start=_landing_start(HOUR_MS, 0), clock=(9000, 5 * HOUR_MS))
    b.advance(90 * MIN_MS)
    assert p.basal.rate == 1000000, p.basal.rate  # 06:30
    b.advance(HOUR_MS)
    assert p.basal.rate == 100000, p.basal.rate  # 07:30
    b.advance(DAY_MS - 150 * MIN_MS)
    # one day from 05:00: 1 h at 1000 ug/day, 23 h at 100 ug/day = 137.5 ug = 1100 strokes of 0.125 ug
    assert abs(p.basal.strokes - 1100) <= 1, p.basal.strokes


def _stop_tick(p):
    # the signed tick delivery stopped at: the pressure is next read a minute after it
    return ticks.sub(p.sample_at, 60000)


def _stopped_by_occlusion(start=None):
    b, p = _running(start=start)
    b.advance(10 * STROKE_MS)
    b.occluded = True
    while p.state != "stopped":
        b.advance(1000)
    return b, p


def test_a_stop_at_any_tick_keeps_sampling_and_logs_its_resume():
    b, p = _stopped_by_occlusion()
    offset = ticks.diff(_stop_tick(p), ticks.from_board(b.start_ticks))
    for target in (0, -60000, ticks.HALF - 60000, -ticks.HALF):
        # the same run again, started so that the stop lands on `target` (one bench at
        # a time: the unix port's heap is the Pico's, less its flash)
        b = p = None
        b, p = _stopped_by_occlusion(_landing_start(offset, target))
        assert _stop_tick(p) == target, (target, _stop_tick(p))
        b.advance(10 * MIN_MS)
        _open_line(b)
        b.advance(5 * MIN_MS)
        assert p.state == "running", (target, _active(p))
        assert b.count("event:resumed") == 1, target


# ---- 6, 7: alarms clear by their rule, and only by it --------------------------------

def test_an_acknowledgement_while_a_latched_occlusion_is_still_blocked_does_not_clear_it():
    b, p = _running()
    b.advance(10 * STROKE_MS)
    for _ in range(2):  # two occlusions that clear by themselves
        _occlude_until_stopped(b, p)
        _open_line(b)
        b.advance(3 * MIN_MS)
        assert p.state == "running"
    _occlude_until_stopped(b, p)  # the third within the hour
    assert p.ack(b.board_now) is None  # acknowledged while still blocked
    _open_line(b)
    b.advance(5 * MIN_MS)
    assert A.OCCLUSION in _active(p) and p.state == "stopped"  # latched: needs a look
    assert p.ack(b.board_now) is None  # acknowledged with the line open
    assert A.OCCLUSION not in _active(p) and p.state == "running"


def test_event_alarms_restored_at_boot_clear_on_acknowledgement():
    b, p = _running()
    b.advance(10 * STROKE_MS)
    p.storage_failed(b.board_now, "log")
    assert p.bolus_request(b.board_now, 300000, 60) is not None  # over max_bolus: safety_limit
    b._collect()
    assert A.STORAGE in _active(p) and A.LIMIT in _active(p)
    stored = b.states[-1]
    b2 = Bench(make_pump(), start_ticks=b.board_now, keep=KEEP)
    b2.boot(stored)
    p2 = b2.pump
    assert A.STORAGE in _active(p2) and A.LIMIT in _active(p2)
    assert p2.ack(b2.board_now) is None
    assert A.STORAGE not in _active(p2) and A.LIMIT not in _active(p2), _active(p2)


def test_a_restored_high_alarm_does_not_mask_new_ones_once_acknowledged():
    b, p = _running()
    b.advance(10 * STROKE_MS)
    p.storage_failed(b.board_now, "state")
    b._collect()
    b2 = Bench(make_pump(), start_ticks=b.board_now, keep=KEEP)
    b2.boot(b.states[-1])
    p2 = b2.pump
    assert p2.take_annunciation() == A.ANNUNCIATION[A.HIGH]
    assert p2.ack(b2.board_now) is None
    b2.battery_mv = 3450
    b2.advance(11 * MIN_MS)
    assert A.BATTERY_LOW in _active(p2)
    assert p2.take_annunciation() == A.ANNUNCIATION[A.MEDIUM], _active(p2)


# ---- 10: the projection ---------------------------------------------------------------

def test_days_to_empty_are_known_at_boot():
    program = dict(BACLOFEN_500, patient_bolus=PATIENT)
    b, p = _running(program, fill_nl=2000000, clock=(9000, 23 * HOUR_MS))
    assert p.set_alarm_settings(b.board_now, {"low_reservoir_nl": 100000, "low_days": 2,
                                              "empty_floor_nl": 0}) is None
    b.advance(HOUR_MS)
    stored = b.states[-1]
    b = p = None
    b2 = Bench(make_pump(), start_ticks=START)
    b2.boot(stored)
    assert b2.pump.days_to_empty >= 0 and b2.pump.days_to_low >= 0


def test_the_worst_case_projection_is_never_later_than_the_programmed_rate():
    # 200 ug/day of 500 ug/mL is 0.4 mL/day: whole days at this rate, boluses not counted,
    # whatever the hour the projection is made at
    for ms in (0, HOUR_MS, 12 * HOUR_MS, 23 * HOUR_MS + 59 * MIN_MS):
        p = _running(BACLOFEN_500, fill_nl=2000000, clock=(9000, ms))[1]
        assert p.days_to_empty <= p.reservoir.volume_nl // 400000, (ms, p.days_to_empty)


# ---- 12: refills and the bridge -----------------------------------------------------

def test_a_stroke_in_flight_at_a_refill_is_counted_in_the_new_fill_on_both_sides():
    b, p = _running()
    b.advance(10 * STROKE_MS)
    # the next stroke commanded, not yet confirmed
    while not b.in_motor:
        b.board_now = (b.board_now + 1000) % WRAP
        b.elapsed_ms += 1000
        p.tick(b.board_now)
        b._collect()
    assert p.in_flight
    assert p.refill(b.board_now, p.reservoir.volume_nl, 20000000, 500, 500) is None
    n = b.in_motor
    b.in_motor = 0
    p.rotor(b.board_now, n)
    b._collect()
    # it may have drawn from either fill: the new one pays (never over-stated), and it is
    # one of the new fill's programmed strokes as well as its confirmed ones
    assert p.reservoir.volume_nl == 20000000 - n * 250
    assert p.strokes_confirmed == n == p.basal.strokes
    b.advance(DAY_MS)
    assert abs(p.strokes_confirmed - p.basal.strokes) <= 1, (p.strokes_confirmed, p.basal.strokes)


def test_a_concentration_change_logs_the_bridge_and_the_new_program():
    program = dict(BACLOFEN_500, pump_dead_volume_nl=50000, catheter_dead_volume_nl=150000)
    b, p = _running(program)
    b.advance(10 * STROKE_MS)
    assert p.refill(b.board_now, p.reservoir.volume_nl, 20000000, 2000, 2000, bridge=True) is None
    progs = _events(b, "program")
    assert progs and progs[-1]["conc_ug_per_ml"] == 2000
    starts = _events(b, "bridge_start")
    assert len(starts) == 1 and starts[0]["volume_nl"] == 200000, starts
    b.advance(10 * DAY_MS)
    ends = _events(b, "bridge_end")
    assert len(ends) == 1, ends
    # 200 uL of the old 500 ug/mL drug left the tip during the bridge: 100 ug
    assert abs(ends[0]["delivered_ng"] - 100000) <= 125, ends


def test_boluses_are_allowed_during_a_bridge_and_never_exceed_their_dose():
    # 50 -> 500 ug/mL: the line's weak drug must not size a bolus of the strong one
    program = {"drug": "baclofen", "conc_ug_per_ml": 50, "dose_ug_per_day": 20,
               "pump_dead_volume_nl": 50000, "catheter_dead_volume_nl": 150000}
    b, p = _running(program, limits=BIG_LIMITS)
    b.advance(HOUR_MS)
    assert p.refill(b.board_now, p.reservoir.volume_nl, 20000000, 500, 500, bridge=True) is None
    assert p.line.nl_unlike(500) > 0
    before = p.patient_ng
    assert p.bolus_request(b.board_now, 50000, 60) is None
    b.advance(2 * HOUR_MS)
    ends = [e for e in _events(b, "bolus_end") if e["kind"] == "clinician"]
    assert ends and ends[-1]["delivered_ng"] <= 50000, ends
    assert p.patient_ng - before <= 50000 + 2 * 20 * 1000 // 12, p.patient_ng - before


def test_a_concentration_change_needs_the_line_volumes():
    b, p = _running()  # a program without dead volumes
    b.advance(10 * STROKE_MS)
    reason = p.refill(b.board_now, p.reservoir.volume_nl, 20000000, 2000, 2000, bridge=True)
    assert reason is not None and "dead_volume" in reason, reason
    assert p.reservoir.conc_ug_per_ml == 500


# ---- 13: failures are loud ----------------------------------------------------------

def test_a_state_that_cannot_be_restored_raises_a_high_alarm():
    b, p = _running()
    b.advance(10 * STROKE_MS)
    stored = bytearray(b.states[-1])
    stored[40] ^= 0x20  # one flipped bit: the CRC fails
    b2 = Bench(make_pump(), start_ticks=b.board_now, keep=KEEP)
    b2.boot(bytes(stored))
    p2 = b2.pump
    assert p2.state == "idle"
    top = p2.alarms.top()
    assert top is not None and top.priority == A.HIGH, _active(p2)


def test_missed_rotor_pulses_neither_over_deliver_nor_go_unnoticed():
    # 100 ug/day of 500 ug/mL: a stroke every 108 s, further apart than the core waits
    # for a pulse, so a missed one is found before the next stroke is due
    b, p = _running({"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 100})
    b.advance(HOUR_MS)
    t0 = b.turned
    s0 = p.basal.strokes
    # every 50th stroke's pulse is lost (2 %)
    real = p.rotor
    count = [0]

    def lossy(now, pulses):
        keep = 0
        for _ in range(pulses):
            count[0] += 1
            if count[0] % 50:
                keep += 1
        if keep:
            real(now, keep)
    p.rotor = lossy
    # never ahead of the programme, not even for a moment: at this constant rate no two
    # strokes of the head may come closer than 108 s, or the window around them holds two
    # strokes where the programme allows one
    times = []
    collect = b._collect

    def watched():
        collect()
        while len(times) < b.turned - t0:
            times.append(b.elapsed_ms)
    b._collect = watched
    b.advance(DAY_MS // 2)
    closest = min(times[i + 1] - times[i] for i in range(len(times) - 1))
    assert closest >= 108000 - 1, closest
    turned = b.turned - t0
    programmed = p.basal.strokes - s0
    assert turned <= programmed + 1, (turned, programmed)
    assert A.ROTOR in _active(p), _active(p)
    assert p.state == "running"


# ---- times longer than the tick counter can tell apart ------------------------------

def test_a_flat_battery_at_power_up_is_alarmed_at_once():
    b = Bench(make_pump(), keep=KEEP)
    b.battery_mv = 3200  # below end of service
    b.boot()
    b.advance(1000)
    assert A.END_OF_SERVICE in _active(b.pump)


def test_a_stop_of_more_than_six_days_logs_its_true_length():
    b, p = _running()
    b.advance(10 * STROKE_MS)
    _occlude_until_stopped(b, p)
    b.advance(7 * DAY_MS)
    _open_line(b)
    b.advance(3 * MIN_MS)
    assert p.state == "running"
    resumed = [e for e in b.bodies("event", "resumed")]
    b._collect()
    got = resumed[-1] if resumed else None
    assert got is not None and 7 * DAY_MS <= got["stopped_ms"] <= 7 * DAY_MS + 5 * MIN_MS, got
    # and the dose it missed is a week's, not whatever a wrapped difference gives
    assert 7 * 200000 - 1000 <= got["missed_ng"] <= 7 * 200000 + 1000, got


def test_occlusions_a_week_old_do_not_count_toward_the_latch():
    b, p = _running()
    b.advance(10 * STROKE_MS)
    for _ in range(2):  # two occlusions that clear by themselves
        _occlude_until_stopped(b, p)
        _open_line(b)
        b.advance(3 * MIN_MS)
    b.advance(6 * DAY_MS + 12 * HOUR_MS)  # past the tick counter's 6.2 days
    _occlude_until_stopped(b, p)
    _open_line(b)
    b.advance(3 * MIN_MS)
    assert p.state == "running" and A.OCCLUSION not in _active(p)  # one in the hour: no latch


def test_a_patient_bolus_refused_by_its_lockout_is_not_an_alarm():
    b, p = _running(dict(BACLOFEN_500, patient_bolus=PATIENT))
    assert p.patient_bolus(b.board_now) is None
    b.advance(20 * MIN_MS)
    assert p.patient_bolus(b.board_now) is not None  # in the lockout: refused, logged
    assert A.LIMIT not in _active(p)
