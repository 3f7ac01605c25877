# The core runs a continuous program end to end: strokes on time, accounting by confirmed
# strokes only, refusals that leave the running program alone, persistence that never
# over-states the reservoir.
from corekit import BACLOFEN_500, Bench, make_pump
from pump import wire

DAY_MS = 86400000


def _running_bench(program=BACLOFEN_500, fill_nl=20000000, **cfg):
    b = Bench(make_pump(**cfg))
    b.boot()
    assert b.pump.fill(b.board_now, fill_nl, program["conc_ug_per_ml"]) is None
    assert b.pump.set_program(b.board_now, program) is None
    return b


def test_first_boot_is_idle_and_delivers_nothing():
    b = Bench(make_pump())
    b.boot()
    b.advance(DAY_MS)
    assert b.pump.state == "idle"
    assert b.turned == 0
    assert b.bodies("event", "power_up")[0]["restored"] is False


def test_a_day_of_200_ug_at_500_ug_per_ml_is_exactly_1600_strokes():
    # 200 ug/day / 500 ug/mL = 0.4 mL/day = 400000 nL / 250 nL = 1600 strokes
    b = _running_bench()
    b.advance(DAY_MS)
    p = b.pump
    assert p.basal.strokes == 1600
    assert p.strokes_confirmed == 1600
    assert p.reservoir.delivered_nl == 400000
    assert p.patient_ng == 200000  # drug out of the catheter tip
    assert p.reservoir.volume_nl == 20000000 - 400000


def test_strokes_are_evenly_spaced():
    # 1600 strokes a day is one every 54000 ms exactly
    b = _running_bench()
    times = []
    last = -1
    while len(times) < 20:
        b.advance(1000)
        if b.turned != last:
            last = b.turned
            times.append(b.elapsed_ms)
    gaps = [times[i + 1] - times[i] for i in range(1, len(times) - 1)]
    assert all(g == 54000 for g in gaps), gaps


def test_only_confirmed_strokes_count_and_a_silent_rotor_raises_the_stall_alarm():
    b = _running_bench()
    b.sensor_pulses = False  # the motor turns, the rotor sensor stays silent
    b.advance(DAY_MS // 4)
    p = b.pump
    # stroke 1 unconfirmed by stroke 2's time: retried in stroke 2's place (a missed
    # pulse must not double a stroke); the retry unconfirmed too by stroke 3's time: the
    # stall alarm, and delivery stops
    assert p.state == "stopped" and p.stop_reason == "motor_stall"
    assert b.turned == 2
    assert p.strokes_confirmed == 0
    assert p.reservoir.delivered_nl == 0
    assert p.reservoir.volume_nl == 20000000 - 2 * 250  # they may have turned: debited
    assert p.strokes_unconfirmed == 2
    assert b.count("event:strokes_unconfirmed") == 2
    assert b.bodies("event", "alarm")[-1]["code"] == "motor_stall"


def test_a_refused_program_leaves_the_running_one_untouched():
    b = _running_bench()
    b.advance(DAY_MS // 2)
    before = b.pump.program
    reason = b.pump.set_program(b.board_now, dict(BACLOFEN_500, dose_ug_per_day=0))
    assert "dose_ug_per_day=0" in reason and "1..3000" in reason
    assert b.pump.program is before
    b.advance(DAY_MS // 2)
    assert b.pump.basal.strokes == 1600  # the day's dose, as if nothing happened
    refusals = b.bodies("event", "refused")
    assert len(refusals) == 1 and refusals[0]["field"] == "dose_ug_per_day"
    assert refusals[0]["what"] == "program"


def test_a_new_concentration_needs_a_refill():
    b = _running_bench()
    reason = b.pump.set_program(b.board_now, dict(BACLOFEN_500, conc_ug_per_ml=2000))
    assert reason is not None and "refill" in reason
    assert b.pump.program.conc_ug_per_ml == 500


def test_a_dose_change_mid_day_is_exact():
    # 12 h at 200 ug/day then 12 h at 400 ug/day = 300 ug; a 250 nL stroke of 500 ug/mL
    # is 0.125 ug, so 2400 strokes
    b = _running_bench()
    b.advance(DAY_MS // 2)
    assert b.pump.set_program(b.board_now, dict(BACLOFEN_500, dose_ug_per_day=400)) is None
    b.advance(DAY_MS // 2)
    assert b.pump.basal.strokes == 2400


def test_an_empty_reservoir_stops_delivery():
    b = _running_bench(fill_nl=2500)  # ten strokes
    b.advance(DAY_MS)
    p = b.pump
    assert b.turned == 10
    assert p.state == "stopped" and p.stop_reason == "reservoir_empty"
    assert p.reservoir.volume_nl == 0
    assert b.bodies("event", "state")[-1]["reason"] == "reservoir_empty"


def test_status_frames_carry_the_accounting():
    b = _running_bench()
    b.advance(DAY_MS)
    s = b.last_status
    for key in ("up_day", "up_ms", "state", "drug", "conc_ug_per_ml", "dose_ug_per_day",
                "rate_nl_per_day", "delivered_nl", "delivered_ng", "reservoir_nl"):
        assert key in s, key
    assert s["rate_nl_per_day"] == 400000
    assert s["state"] == "running"


def test_status_command_is_answered_and_unknown_commands_are_refused():
    b = _running_bench()
    b.advance(1000)
    p = b.pump
    p.received(b.board_now, b"junk" + wire.encode(5, {"cmd": "status"}) + wire.encode(6, {"cmd": "launch"}))
    b._collect()
    results = b.bodies("result")
    assert results[0]["re"] == 5 and results[0]["ok"] is True
    assert results[1]["re"] == 6 and results[1]["ok"] is False and results[1]["code"] == "unknown_command"


def test_restore_never_over_states_the_reservoir():
    b = _running_bench()
    b.advance(DAY_MS // 3)
    truth_left = b.pump.reservoir.volume_nl
    stored = b.states[-1]
    # power cut now: a new core boots from the last snapshot written
    b2 = Bench(make_pump(), start_ticks=12345)
    b2.boot(stored)
    p2 = b2.pump
    assert p2.program.continuous_ng_per_day() == 200000
    assert p2.reservoir.volume_nl <= truth_left
    assert truth_left - p2.reservoir.volume_nl <= p2.cfg.lease_nl
    assert p2.state == "running"
    before = p2.basal.strokes  # the fill's count goes on
    assert 0 < before <= b.pump.basal.strokes
    b2.advance(DAY_MS)
    assert p2.basal.strokes - before == 1600


def test_a_corrupt_snapshot_boots_idle_and_says_so():
    b = _running_bench()
    b.advance(DAY_MS // 10)
    stored = bytearray(b.states[-1])
    stored[20] ^= 0x01
    b2 = Bench(make_pump())
    b2.boot(bytes(stored))
    assert b2.pump.state == "idle"
    assert b2.bodies("event", "state_corrupt")
