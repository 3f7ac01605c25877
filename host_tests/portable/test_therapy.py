# Worked examples of the therapy a clinician programs, with the totals computed by hand
# in each test: flex days, weekday profiles, the clock set forward and back, pause with
# the keep-open rate, titration, boluses of every kind, bridging and the hard limits.
from corekit import Bench, make_pump

DAY_MS = 86400000
HOUR_MS = 3600000
MIN_MS = 60000
MONDAY = 2  # 2000-01-03, a Monday (days count from 2000-01-01)
FRIDAY = MONDAY + 4
STROKE_UG_2000 = 500  # ng: a 250 nL stroke of 2000 ug/mL is 0.5 ug
BIG_LIMITS = {"max_rate_ng_per_day": 3000000, "max_24h_ng": 5000000, "max_bolus_ng": 1000000}


def _pump(program, conc=2000, fill_nl=20000000, day=MONDAY, ms=0, limits=BIG_LIMITS):
    b = Bench(make_pump())
    b.boot()
    p = b.pump
    assert p.set_limits(b.board_now, limits) is None
    assert p.set_clock(b.board_now, day, ms) is None
    assert p.fill(b.board_now, fill_nl, conc) is None
    fields = {"drug": "baclofen", "conc_ug_per_ml": conc}
    fields.update(program)
    reason = p.set_program(b.board_now, fields)
    assert reason is None, reason
    return b, p


def _tip_ng(p):
    # drug out of the catheter tip, counting strokes still turning as delivered
    return p.patient_ng + p.in_flight * p.cfg.stroke_nl * p.reservoir.conc_ug_per_ml // 1000


def _ev(b, name):
    b._collect()
    return b.bodies("event", name)


def test_a_four_step_flex_day_at_2000_ug_per_ml_delivers_exactly_250_ug():
    # 6 h each at 200, 400, 300 and 100 ug/day: (200 + 400 + 300 + 100) / 4 = 250 ug
    b, p = _pump({"profiles": {"day": [[0, 200000], [360, 400000], [720, 300000], [1080, 100000]]}})
    b.advance(DAY_MS)
    assert p.basal.strokes == 250000 // STROKE_UG_2000 == 500
    assert _tip_ng(p) == 250000


def test_flex_steps_change_the_rate_at_their_start_times():
    b, p = _pump({"profiles": {"day": [[0, 200000], [360, 400000], [720, 300000], [1080, 100000]]}})
    b.advance(6 * HOUR_MS - 1)
    assert p.basal.rate == 200000
    b.advance(1)
    assert p.basal.rate == 400000
    # 6 h at 200 ug/day = 50 ug = 100 strokes, the 100th at exactly 06:00
    assert p.basal.strokes == 100


def test_before_the_first_step_the_previous_days_last_step_runs():
    # night rate from 22:00 runs past midnight until 07:00
    b, p = _pump({"profiles": {"d": [[420, 200000], [1320, 400000]]}})
    assert p.basal.rate == 400000  # Monday 00:00 is still last night's 22:00 step
    b.advance(7 * HOUR_MS)
    assert p.basal.rate == 200000


def test_weekday_and_weekend_profiles():
    # Friday 300 ug, Saturday 200 ug, Sunday 200 ug: 700 ug = 1400 strokes of 0.5 ug
    week = ["wk", "wk", "wk", "wk", "wk", "we", "we"]
    b, p = _pump({"profiles": {"wk": [[0, 300000]], "we": [[0, 200000]]}, "week": week}, day=FRIDAY)
    b.advance(3 * DAY_MS)
    assert p.basal.strokes == 1400


def test_a_flex_schedule_needs_the_clock():
    b = Bench(make_pump())
    b.boot()
    p = b.pump
    assert p.fill(b.board_now, 20000000, 2000) is None
    reason = p.set_program(b.board_now, {"drug": "baclofen", "conc_ug_per_ml": 2000,
                                         "profiles": {"d": [[0, 200000], [600, 300000]]}})
    assert reason is not None and "clock" in reason
    assert p.program is None


DAY_NIGHT = {"profiles": {"d": [[0, 400000], [420, 200000]]}}  # 400 ug/day until 07:00, then 200


def test_setting_the_clock_forward_skips_no_elapsed_time_and_reports_the_skipped_dose():
    # At 02:00 the clock jumps to 03:00 (a daylight-saving change). Over the next 24 h of
    # real time the pump runs: 2 h + 4 h + 1 h at 400 and 17 h at 200 ug/day
    # = (7 x 400 + 17 x 200) / 24 = 258.33 ug = 516 whole strokes of 0.5 ug.
    b, p = _pump(DAY_NIGHT)
    b.advance(2 * HOUR_MS)
    assert p.set_clock(b.board_now, MONDAY, 3 * HOUR_MS) is None
    b.advance(22 * HOUR_MS)
    assert p.basal.strokes == 516
    ev = _ev(b, "clock")[-1]
    assert ev["moved_ms"] == HOUR_MS
    assert ev["skipped_ng"] == 16667  # one hour at 400 ug/day, rounded up


def test_setting_the_clock_back_repeats_no_dose_of_elapsed_time():
    # At 08:00 the clock goes back to 07:00. 24 h of real time from midnight:
    # 7 h at 400, then 1 h + 1 h (the repeated 07:00-08:00) + 15 h at 200 ug/day
    # = (7 x 400 + 17 x 200) / 24 = 258.33 ug: 516 strokes, one per elapsed 0.5 ug.
    b, p = _pump(DAY_NIGHT)
    b.advance(8 * HOUR_MS)
    assert p.set_clock(b.board_now, MONDAY, 7 * HOUR_MS) is None
    b.advance(16 * HOUR_MS)
    assert p.basal.strokes == 516
    ev = _ev(b, "clock")[-1]
    assert ev["moved_ms"] == -HOUR_MS
    assert ev["repeated_ng"] == 8334  # one hour at 200 ug/day, rounded up


def test_pause_runs_the_keep_open_rate_and_resume_the_program():
    # keep-open 6 uL/day of 2000 ug/mL = 12 ug/day = 24 strokes a day
    b, p = _pump({"dose_ug_per_day": 200, "keep_open_nl_per_day": 6000})
    assert p.pause(b.board_now) is None
    b.advance(DAY_MS)
    assert p.basal.strokes == 24
    assert p.resume(b.board_now) is None
    b.advance(DAY_MS)
    assert p.basal.strokes == 24 + 400
    assert p.pause(b.board_now) is None and p.pause(b.board_now) is not None  # refused: already paused


def test_titration_by_percent_takes_effect_at_its_time():
    # 200 ug/day, +50 % from one hour on: 8.333 ug + 23 h at 300 ug/day (287.5 ug)
    # = 295.83 ug = 591 strokes of 0.5 ug
    b, p = _pump({"dose_ug_per_day": 200})
    assert p.titrate(b.board_now, percent=50, in_min=60) is None
    assert p.program.continuous_ng_per_day() == 200000  # not yet
    b.advance(DAY_MS)
    assert p.program.continuous_ng_per_day() == 300000
    assert p.basal.strokes == 591


def test_titration_to_a_daily_dose_keeps_the_schedules_shape():
    # day/night 400 and 200 ug/day (7 h and 17 h: 258.33 ug a day) scaled to 310 ug a day:
    # x 1.2 exactly, 480 and 240 ug/day
    b, p = _pump(DAY_NIGHT)
    assert p.titrate(b.board_now, daily_ng=310000) is None
    assert p.program.schedule.profiles == [[[0, 480000], [420 * MIN_MS, 240000]]]


def test_a_clinician_bolus_runs_on_top_of_the_basal_and_is_recorded():
    # 50 ug over 30 min = 100 strokes of 0.5 ug, plus 400 basal strokes in the day
    b, p = _pump({"dose_ug_per_day": 200})
    assert p.bolus_request(b.board_now, 50000, 30) is None
    b.advance(DAY_MS)
    end = _ev(b, "bolus_end")[-1]
    assert end["kind"] == "clinician" and end["end"] == "done"
    assert end["delivered_ng"] == 50000 and end["strokes_confirmed"] == 100
    assert _tip_ng(p) == 200000 + 50000


def test_a_cancelled_bolus_records_what_was_delivered():
    # 100 strokes over 30 min is one every 18 s: after 15 min, 50 of them
    b, p = _pump({"dose_ug_per_day": 200})
    assert p.bolus_request(b.board_now, 50000, 30) is None
    b.advance(15 * MIN_MS)
    assert p.cancel_bolus(b.board_now) is None
    end = _ev(b, "bolus_end")[-1]
    assert end["end"] == "cancelled"
    assert end["strokes_commanded"] == 50 and end["delivered_ng"] == 50 * STROKE_UG_2000
    assert p.cancel_bolus(b.board_now) is not None  # nothing left to cancel


def test_a_bolus_cut_short_by_an_empty_reservoir_records_what_was_delivered():
    b, p = _pump({"dose_ug_per_day": 200}, fill_nl=20 * 250)  # twenty strokes in the reservoir
    assert p.bolus_request(b.board_now, 50000, 30) is None
    b.advance(HOUR_MS)
    end = _ev(b, "bolus_end")[-1]
    assert end["end"] == "reservoir_empty"
    assert end["delivered_ng"] == end["strokes_confirmed"] * STROKE_UG_2000 < 50000
    assert p.bolus is None


def test_one_bolus_at_a_time():
    b, p = _pump({"dose_ug_per_day": 200, "patient_bolus": {
        "dose_ng": 20000, "duration_min": 10, "lockout_min": 60, "max_per_24h": 4}})
    assert p.bolus_request(b.board_now, 50000, 30) is None
    reason = p.bolus_request(b.board_now, 10000, 10)
    assert reason is not None and "clinician bolus is running" in reason
    assert p.patient_bolus(b.board_now) is not None
    assert len(_ev(b, "refused")) == 2


def test_priming_fills_the_line_without_counting_its_fluid_as_drug():
    # pump tubing 50 uL + catheter 150 uL = 200 uL = 800 strokes at 600 uL/h: 20 min.
    # Nothing that leaves the tip while priming is drug; the basal waits for it.
    b, p = _pump({"dose_ug_per_day": 200, "pump_dead_volume_nl": 50000, "catheter_dead_volume_nl": 150000,
                  "priming_nl_per_hour": 600000})
    assert p.prime(b.board_now, "all") is None
    b.advance(19 * MIN_MS)
    assert p.patient_ng == 0 and p.basal.rate == 0
    b.advance(2 * MIN_MS)
    end = _ev(b, "bolus_end")[-1]
    assert end["kind"] == "prime" and end["strokes_confirmed"] == 800 and end["delivered_ng"] == 0
    assert p.reservoir.delivered_nl == 200000
    b.advance(DAY_MS)
    # from here the day's basal: 200 ug in 24 h, within a stroke
    assert abs(_tip_ng(p) - 200000) <= STROKE_UG_2000


def test_priming_the_catheter_only():
    b, p = _pump({"dose_ug_per_day": 200, "pump_dead_volume_nl": 50000, "catheter_dead_volume_nl": 150000})
    assert p.prime(b.board_now, "catheter") is None
    assert p.bolus.strokes_total == 600
    assert p.prime(b.board_now, "all") is not None  # one bolus at a time


def test_a_new_concentration_without_a_bridge_is_refused():
    b, p = _pump({"dose_ug_per_day": 200, "pump_dead_volume_nl": 20000, "catheter_dead_volume_nl": 80000},
                 conc=500)
    reason = p.fill(b.board_now, 20000000, 2000)
    assert reason is not None and "needs a bridge" in reason
    assert p.reservoir.conc_ug_per_ml == 500


def test_the_bridge_keeps_the_dose_while_the_old_drug_clears():
    # 100 uL of 500 ug/mL (50 ug) sits in the line when 2000 ug/mL is filled. At
    # 200 ug/day it takes 6 h to clear, at 0.4 mL/day; then 0.1 mL/day of the new drug.
    # The patient gets 200 ug/day throughout: 200 ug in the next 24 h, within a stroke.
    b, p = _pump({"dose_ug_per_day": 200, "pump_dead_volume_nl": 20000, "catheter_dead_volume_nl": 80000},
                 conc=500)
    b.advance(DAY_MS)
    before_ng = _tip_ng(p)
    assert p.fill(b.board_now, 20000000, 2000, bridge=True) is None
    assert _ev(b, "fill")[-1]["bridge_nl"] == 100000
    assert p.bridge is not None and _ev(b, "bridge_start")[-1]["volume_nl"] == 100000
    b.advance(6 * HOUR_MS - MIN_MS)
    assert p.bridge is not None
    b.advance(2 * MIN_MS)
    assert p.bridge is None
    assert _ev(b, "bridge_end")[-1]["from_conc_ug_per_ml"] == 500
    b.advance(18 * HOUR_MS - MIN_MS)
    assert abs(_tip_ng(p) - 200000) <= 500  # delivered since the fill (counters restart)
    assert before_ng > 0
    # volume: 100 uL at the old strength, then 18 h at 0.1 mL/day = 75 uL
    assert abs(p.reservoir.delivered_nl - 175000) <= 250


def test_patient_bolus_lockout_and_cap_are_refused_with_the_next_allowed_time():
    b, p = _pump({"dose_ug_per_day": 200, "patient_bolus": {
        "dose_ng": 20000, "duration_min": 10, "lockout_min": 120, "max_per_24h": 3}})
    assert p.patient_bolus(b.board_now) is None
    b.advance(30 * MIN_MS)
    reason = p.patient_bolus(b.board_now)
    assert "lockout" in reason and "next allowed in 90 min" in reason, reason
    assert _ev(b, "refused")[-1]["retry_in_ms"] == 90 * MIN_MS
    b.advance(90 * MIN_MS)
    assert p.patient_bolus(b.board_now) is None  # 2 h after the first
    b.advance(2 * HOUR_MS)
    assert p.patient_bolus(b.board_now) is None  # the third
    b.advance(2 * HOUR_MS)
    reason = p.patient_bolus(b.board_now)  # 6 h after the first: the cap of 3 a day
    assert "3 of 3" in reason and "next allowed in 1080 min" in reason, reason
    b.advance(18 * HOUR_MS)
    assert p.patient_bolus(b.board_now) is None  # 24 h after the first
    assert len(_ev(b, "bolus_end")) >= 3


def test_a_step_above_the_maximum_rate_is_refused_with_the_numbers():
    b, p = _pump({"dose_ug_per_day": 200}, limits={"max_rate_ng_per_day": 300000, "max_24h_ng": 400000,
                                                   "max_bolus_ng": 50000})
    reason = p.set_program(b.board_now, {"drug": "baclofen", "conc_ug_per_ml": 2000,
                                         "profiles": {"d": [[0, 200000], [600, 350000]]}})
    assert "350 ug/day" in reason and "maximum rate of 300 ug/day" in reason, reason
    ev = _ev(b, "refused")[-1]
    assert ev["what"] == "program" and ev["limit"] == "max_rate"
    assert p.program.continuous_ng_per_day() == 200000


def test_a_schedule_over_the_24h_maximum_is_refused_counting_patient_boluses():
    # 300 ug/day plus 4 patient boluses of 30 ug = 420 ug > 400 ug
    b, p = _pump({"dose_ug_per_day": 200}, limits={"max_rate_ng_per_day": 300000, "max_24h_ng": 400000,
                                                   "max_bolus_ng": 50000})
    reason = p.set_program(b.board_now, {"drug": "baclofen", "conc_ug_per_ml": 2000, "dose_ug_per_day": 300,
                                         "patient_bolus": {"dose_ng": 30000, "duration_min": 10,
                                                           "lockout_min": 60, "max_per_24h": 4}})
    assert "420 ug in 24 h" in reason and "400 ug" in reason, reason
    assert _ev(b, "refused")[-1]["limit"] == "max_24h"


def test_a_bolus_over_the_maximum_or_the_24h_window_is_refused():
    b, p = _pump({"dose_ug_per_day": 200}, limits={"max_rate_ng_per_day": 300000, "max_24h_ng": 240000,
                                                   "max_bolus_ng": 50000})
    reason = p.bolus_request(b.board_now, 60000, 30)
    assert "60 ug is above the maximum bolus of 50 ug" in reason, reason
    # 200 ug a day of basal and a 50 ug bolus would make 250 ug in some 24 h window > 240
    reason = p.bolus_request(b.board_now, 50000, 30)
    assert "above the 24 h maximum of 240 ug" in reason, reason
    assert p.bolus_request(b.board_now, 30000, 30) is None  # 230 ug fits
    assert [e["limit"] for e in _ev(b, "refused")] == ["max_bolus", "max_24h"]


def test_the_runtime_guard_withholds_strokes_rather_than_cross_the_24h_limit():
    # a limit lowered below what the last 24 h already hold: the pump withholds strokes
    # (and says so) until the window has room again
    b, p = _pump({"dose_ug_per_day": 200})
    assert p.bolus_request(b.board_now, 100000, 30) is None
    b.advance(HOUR_MS)
    assert p.set_limits(b.board_now, {"max_rate_ng_per_day": 300000, "max_24h_ng": 205000,
                                      "max_bolus_ng": 50000}) is None
    b.advance(DAY_MS)
    assert p.strokes_withheld > 0
    assert _ev(b, "withheld")
    assert p.window.total_ng <= 205000
