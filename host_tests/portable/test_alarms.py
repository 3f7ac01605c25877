# The alarm system in the core: the table, raising and clearing by each alarm's rule,
# what each does to delivery, priorities and silencing, debouncing, the detectors
# (occlusion, stall, supply, sensor), the reservoir levels, the refill workflow, and
# alarm latches across a restart.
from corekit import BACLOFEN_500, Bench, make_pump
from pump import alarms as A

DAY_MS = 86400000
HOUR_MS = 3600000
MIN_MS = 60000
STROKE_MS = 54000  # 200 ug/day of 500 ug/mL: a 250 nL stroke every 54 s


def _running(fill_nl=20000000, program=BACLOFEN_500, clock=True):
    b = Bench(make_pump())
    b.boot()
    p = b.pump
    if clock:
        assert p.set_clock(b.board_now, 9000, 0) is None
    assert p.fill(b.board_now, fill_nl, program["conc_ug_per_ml"]) is None
    assert p.set_program(b.board_now, program) is None
    b.advance(10 * STROKE_MS)  # a baseline for the pressure detector
    return b, p


def _alarm_events(b, code):
    b._collect()
    return [e for e in b.bodies("event", "alarm") if e["code"] == code]


def _active(p):
    return [a.code for a in p.alarms.active]


def test_the_table_holds_every_alarm_the_pump_needs():
    want = {
        A.EMPTY: (A.HIGH, A.STOP), A.OCCLUSION: (A.HIGH, A.STOP), A.STALL: (A.HIGH, A.STOP),
        A.END_OF_SERVICE: (A.HIGH, A.STOP), A.LOW_VOLUME: (A.MEDIUM, A.CONTINUE),
        A.LOW_DAYS: (A.MEDIUM, A.CONTINUE), A.BATTERY_LOW: (A.MEDIUM, A.CONTINUE),
        A.STORAGE: (A.HIGH, A.CONTINUE), A.SENSOR: (A.MEDIUM, A.CONTINUE), A.CLOCK: (A.LOW, A.CONTINUE),
        A.LIMIT: (A.LOW, A.CONTINUE), A.WATCHDOG: (A.MEDIUM, A.CONTINUE),
    }
    for code, (priority, delivery) in want.items():
        assert A.TABLE[code][0] == priority and A.TABLE[code][1] == delivery, code
    for priority in (A.HIGH, A.MEDIUM, A.LOW):
        led, tone, every = A.ANNUNCIATION[priority]
        assert led and tone and every >= 1
    # a higher priority is sounded more often
    assert A.ANNUNCIATION[A.HIGH][2] < A.ANNUNCIATION[A.MEDIUM][2] < A.ANNUNCIATION[A.LOW][2]


def test_a_full_occlusion_stops_delivery_within_three_strokes_and_resumes_without_a_burst():
    b, p = _running()
    before = b.turned
    b.occluded = True
    b.advance(10 * STROKE_MS)
    assert p.state == "stopped" and p.stop_reason == A.OCCLUSION
    into_blockage = b.turned - before
    assert into_blockage <= 3, into_blockage
    raised = _alarm_events(b, A.OCCLUSION)
    assert len(raised) == 1 and raised[0]["priority"] == "high"
    # blocked for two hours: nothing is given, and the stop is not made up afterwards
    b.advance(2 * HOUR_MS)
    assert b.turned - before == into_blockage
    b.occluded = False
    b.line_mbar = 0  # the blockage clears: the line drains
    b.advance(3 * MIN_MS)  # sampled every minute while stopped
    assert p.state == "running"
    assert [e["state"] for e in _alarm_events(b, A.OCCLUSION)] == ["raised", "cleared"]
    resumed = b.bodies("event", "resumed")[-1]
    # about two hours at 200 ug/day missed: 16.7 ug, logged, not delivered as a burst
    assert 16000 <= resumed["missed_ng"] <= 18500, resumed
    t = b.turned
    b.advance(STROKE_MS + 1000)
    assert b.turned - t <= 2  # the programmed rate, no catch-up


def test_a_cough_is_not_an_occlusion():
    b, p = _running()
    b.baseline_mbar += 150  # one sample high (median of three ignores it)
    b.advance(STROKE_MS)
    b.baseline_mbar -= 150
    b.advance(5 * STROKE_MS)
    assert p.state == "running" and A.OCCLUSION not in _active(p)


def test_a_slow_pressure_drift_moves_the_baseline_not_the_alarm():
    b, p = _running()
    for _ in range(60):  # +120 mbar over an hour, 2 mbar a stroke: posture, not a blockage
        b.baseline_mbar += 2
        b.advance(STROKE_MS)
    assert p.state == "running" and A.OCCLUSION not in _active(p)


def test_a_stalled_motor_gets_one_retry_then_the_alarm_and_ack_tries_again():
    b, p = _running()
    b.motor_turns = False
    b.advance(5 * STROKE_MS)
    assert p.state == "stopped" and p.stop_reason == A.STALL
    assert len(_alarm_events(b, A.STALL)) == 1
    assert p.ack(b.board_now) is None  # someone looked: the motor is tried again
    assert p.state == "running"
    b.motor_turns = True
    b.advance(3 * STROKE_MS)
    assert p.state == "running" and A.STALL not in _active(p)
    assert p.strokes_confirmed > 0


def test_the_empty_floor_stops_delivery_and_a_refill_clears_it():
    b, p = _running(fill_nl=4000000)
    assert p.set_alarm_settings(b.board_now, {"low_reservoir_nl": 3000000, "low_days": 0,
                                              "empty_floor_nl": 2900000}) is None
    b.advance(3 * DAY_MS)  # 0.4 mL/day: below 3 mL after 2.5 days, below the floor soon after
    assert A.LOW_VOLUME in _active(p)
    assert p.state == "stopped" and p.stop_reason == A.EMPTY
    assert p.reservoir.volume_nl >= 2900000 - 250
    assert p.refill(b.board_now, p.reservoir.volume_nl, 20000000, 500, 500) is None
    assert p.state == "running" and A.EMPTY not in _active(p) and A.LOW_VOLUME not in _active(p)


def test_low_reservoir_by_days_left_counts_the_patient_boluses_still_allowed():
    # 2 mL at 0.4 mL/day is 5 days; with 4 patient boluses of 25 ug (0.2 mL) a day the
    # worst case is 0.6 mL/day: the floor in under 3.4 days
    program = dict(BACLOFEN_500, patient_bolus={"dose_ng": 25000, "duration_min": 10,
                                                "lockout_min": 60, "max_per_24h": 4})
    b, p = _running(fill_nl=2000000, program=program)
    assert p.set_alarm_settings(b.board_now, {"low_reservoir_nl": 100000, "low_days": 2,
                                              "empty_floor_nl": 0}) is None
    assert p.days_to_empty == 3, p.days_to_empty
    assert A.LOW_DAYS not in _active(p)
    b.advance(DAY_MS + HOUR_MS)  # the projection is renewed hourly
    assert p.days_to_empty == 2 and A.LOW_DAYS in _active(p)
    assert p.state == "running"  # medium: delivery goes on


def test_battery_low_warns_end_of_service_stops_and_both_clear_with_hysteresis():
    b, p = _running()
    b.battery_mv = 3450
    b.advance(11 * MIN_MS)  # sampled every 10 minutes
    assert A.BATTERY_LOW in _active(p) and p.state == "running"
    b.battery_mv = 3280
    b.advance(11 * MIN_MS)
    assert A.END_OF_SERVICE in _active(p) and p.state == "stopped"
    b.battery_mv = 3350  # above the threshold but inside the hysteresis: still stopped
    b.advance(11 * MIN_MS)
    assert p.state == "stopped"
    b.battery_mv = 3700  # a new battery
    b.advance(11 * MIN_MS)
    assert p.state == "running" and A.END_OF_SERVICE not in _active(p)
    assert A.BATTERY_LOW not in _active(p)


def test_pressure_sensor_faults_rail_and_stuck():
    b, p = _running()
    b.pressure_raw = 10  # a broken wire reads at the rail
    b.advance(2 * STROKE_MS)
    assert A.SENSOR in _active(p) and p.state == "running"  # medium: therapy goes on
    b.pressure_raw = None
    b.advance(2 * STROKE_MS)
    assert A.SENSOR not in _active(p)
    b.pressure_raw = 6800  # stuck: never moves
    b.advance(70 * STROKE_MS)
    assert A.SENSOR in _active(p)


def test_clock_not_set_until_it_is():
    b, p = _running(clock=False)
    assert A.CLOCK in _active(p)
    assert p.set_clock(b.board_now, 9000, 0) is None
    assert A.CLOCK not in _active(p)


def test_a_limit_refusal_and_a_watchdog_restart_are_low_and_medium_until_acknowledged():
    b, p = _running()
    assert p.set_limits(b.board_now, {"max_rate_ng_per_day": 300000, "max_24h_ng": 400000,
                                      "max_bolus_ng": 50000}) is None
    assert p.bolus_request(b.board_now, 60000, 30) is not None  # over max_bolus
    assert A.LIMIT in _active(p)
    stored = b.states[-1]
    b2 = Bench(make_pump())
    b2.boot(stored)
    b2.pump.power_up(b2.board_now, stored, watchdog_reset=True)
    assert A.WATCHDOG in _active(b2.pump)
    assert b2.pump.ack(b2.board_now) is None
    assert A.WATCHDOG not in _active(b2.pump) and A.LIMIT not in _active(b2.pump)


def test_the_highest_priority_annunciates_and_the_next_follows():
    b, p = _running(clock=False)
    assert p.take_annunciation() == A.ANNUNCIATION[A.LOW]  # clock not set
    b.battery_mv = 3450
    b.advance(11 * MIN_MS)
    assert p.take_annunciation() == A.ANNUNCIATION[A.MEDIUM]
    b.occluded = True
    b.advance(5 * STROKE_MS)
    assert p.take_annunciation() == A.ANNUNCIATION[A.HIGH]
    b.occluded = False
    b.line_mbar = 0
    b.advance(3 * MIN_MS)
    assert p.take_annunciation() == A.ANNUNCIATION[A.MEDIUM]


def test_silence_is_bounded_and_a_new_alarm_sounds_at_once():
    b, p = _running(clock=False)
    assert p.silence(b.board_now, 30) is not None  # beyond 15 minutes: refused
    assert p.silence(b.board_now, 10) is None
    led, tone, _ = p.take_annunciation()
    assert tone == 0 and led  # the light stays
    b.advance(11 * MIN_MS)
    assert p.take_annunciation()[1] != 0  # back after 10 minutes
    assert p.silence(b.board_now, 15) is None
    b.battery_mv = 3450
    b.advance(11 * MIN_MS)
    assert p.take_annunciation() == A.ANNUNCIATION[A.MEDIUM]  # new: sounds despite the silence


def test_a_persisting_condition_is_one_event_not_a_flood():
    b, p = _running()
    b.pressure_raw = 10
    b.advance(DAY_MS)  # a day of samples at the rail
    assert len(_alarm_events(b, A.SENSOR)) == 1


def test_refill_checks_the_residual_and_the_concentration_entered_twice():
    b, p = _running()
    b.advance(DAY_MS)
    expected = p.reservoir.volume_nl
    reason = p.refill(b.board_now, expected, 20000000, 500, 5000)
    assert "entered as 500 and as 5000" in reason
    # 1.5 mL less withdrawn than expected: flagged (a leak, or drug lost to the pocket)
    assert p.refill(b.board_now, expected - 2500000, 20000000, 500, 500) is None
    b._collect()
    ev = b.bodies("event", "refill")[-1]
    assert ev["mismatch"] is True and ev["difference_nl"] == -2500000
    assert A.RESIDUAL in _active(p)
    assert p.reservoir.volume_nl == 20000000
    b.advance(DAY_MS)
    expected = p.reservoir.volume_nl
    assert p.refill(b.board_now, expected + 100000, 20000000, 500, 500) is None  # within tolerance
    b._collect()
    assert b.bodies("event", "refill")[-1]["mismatch"] is False


def test_alarm_latches_survive_a_restart_and_a_blocked_line_does_not_become_the_norm():
    b, p = _running()
    b.occluded = True
    b.advance(5 * STROKE_MS)
    assert p.stop_reason == A.OCCLUSION
    b._collect()
    stored = b.pump._snapshot()  # as written at the alarm
    b2 = Bench(make_pump())
    b2.line_mbar = b.line_mbar  # still blocked after the restart
    b2.occluded = True
    b2.boot(stored)
    p2 = b2.pump
    assert A.OCCLUSION in _active(p2) and p2.state == "stopped"
    b2.advance(10 * MIN_MS)
    assert p2.state == "stopped"  # the high pressure was not taken as the new baseline
    b2.occluded = False
    b2.line_mbar = 0
    b2.advance(3 * MIN_MS)
    assert p2.state == "running"


def test_a_noisy_sensor_is_a_fault_and_a_climbing_pressure_is_not():
    b, p = _running()
    for i in range(12):  # +-200 mbar up and down, reading after reading
        b.baseline_mbar = 12 + (200 if i % 2 else -150)
        b.advance(STROKE_MS)
    assert A.SENSOR in _active(p) and A.OCCLUSION not in _active(p)
    b.baseline_mbar = 12
    b.advance(10 * STROKE_MS)
    assert A.SENSOR in _active(p)  # hysteresis: over after 16 calm readings in a row
    b.advance(10 * STROKE_MS)
    assert A.SENSOR not in _active(p)
    b.occluded = True  # 200 mbar a stroke, only upward: an occlusion, not noise
    b.advance(5 * STROKE_MS)
    assert A.OCCLUSION in _active(p) and A.SENSOR not in _active(p)


def _boot_records(b):
    # the events of the last boot, from its power_up on, as the log holds them
    b._collect()
    events = b.bodies("event")
    starts = [i for i, e in enumerate(events) if e["ev"] == "power_up"]
    return events[starts[-1]:] if starts else []


def test_a_restart_files_its_restored_alarms_after_its_power_up_record_with_the_wall_clock():
    # A log reader splits boots at power_up: what the restore found belongs to the new
    # boot, and the power_up record says where the wall clock stood, so every record of
    # the boot can be placed on it.
    b, p = _running()
    b.battery_mv = 3450
    b.advance(11 * MIN_MS)
    assert A.BATTERY_LOW in _active(p)
    stored = b.states[-1]
    day, ms = p.clock.day, p.clock.ms
    b2 = Bench(make_pump())
    b2.boot(stored)
    events = b2.bodies("event")
    assert [e["ev"] for e in events[:2]] == ["power_up", "alarms_restored"], [e["ev"] for e in events]
    up = events[0]
    assert up["clock"] == "restored" and up["restored"] is True
    # restored from the snapshot: at or before the clock when the power went
    assert up["wall"][0] * DAY_MS + up["wall"][1] <= day * DAY_MS + ms
    assert [a[0] for a in events[1]["alarms"]] == [A.BATTERY_LOW]
    assert all((e["up_day"], e["up_ms"]) == (0, 0) for e in events[:2])
    # a first boot has no wall clock; a corrupt state is reported after power_up too
    first = Bench(make_pump())
    first.boot()
    assert first.bodies("event", "power_up")[0]["wall"] is None
    bad = Bench(make_pump())
    bad.boot(b"~1 0 {\"t\":\"therapy\"} 00000000\n")
    assert [e["ev"] for e in bad.bodies("event")[:2]] == ["power_up", "state_corrupt"]
