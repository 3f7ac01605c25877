# The alarm figures of `make bench` (tools/bench_alarms.py) measured once at a tiny scale:
# the typical rate, one seed, two simulated days. These check that the measurement
# measures (an alarm that comes is seen, one injected is counted, the volumes add up),
# not how well the firmware does: its figures are printed by the bench, never asserted.
from boards.sim import config
from tools import bench_alarms as B

DAY_MS = 86400000


def test_an_occlusion_is_timed_counted_and_released():
    r = B.fault_run(B.typical(), "occlusion", 1)
    assert r["alarm_ms"] is not None and 0 < r["alarm_ms"] < r["hold_ms"]
    assert type(r["strokes"]) is int and 1 <= r["strokes"] <= 6, r
    assert 0 <= r["due"] <= r["strokes"] + 1 and r["programmed_nl"] > 0
    # a full blockage keeps every stroke pushed into it (or refuses it back)
    assert r["stored_nl"] >= 0
    assert r["stored_nl"] + r["backflow_nl"] == r["strokes"] * config.STROKE_NL
    assert r["released_nl"] == r["stored_nl"]
    assert r["resumed_ms"] is not None and 0 <= r["resumed_ms"] <= B.RELEASE_WINDOW_MS
    assert r["window_delivered_nl"] >= r["released_nl"]


def test_a_stall_is_timed_and_counted():
    r = B.fault_run(B.typical(), "stall", 1)
    assert r["alarm_ms"] is not None and 0 < r["alarm_ms"] < r["hold_ms"]
    assert type(r["strokes"]) is int and 1 <= r["strokes"] <= 6, r
    assert r["due"] <= r["strokes"]
    assert r["stored_nl"] == 0 and "released_nl" not in r  # a stalled rotor moves no fluid


def test_a_clean_run_counts_no_alarm_and_an_injected_one_is_counted():
    clean = B.false_alarms(1, 2)
    assert clean["raised"] == [] and clean["log_raised"] == 0
    hit = B.false_alarms(1, 2, faults=[("occlusion", DAY_MS, DAY_MS + 3600000)])
    codes = [code for _, code in hit["raised"]]
    assert "occlusion" in codes
    assert all(DAY_MS <= ms < DAY_MS + 3600000 for ms, code in hit["raised"] if code == "occlusion")
    assert hit["log_raised"] == len(hit["raised"])  # the tapped link and the log agree


def test_the_programmed_strokes_are_recomputed_from_the_prescription():
    s = B.typical()  # 0.4 mL/day: 1600 strokes a day, one every 54 s
    assert s.interval_ms == 54000
    assert s.strokes_due(0, DAY_MS + 1) == 1600
    assert s.strokes_due(54000, 54001) == 1 and s.strokes_due(54001, 108000) == 0
    lowest = B.scenarios()[0]  # the validator's minimum: one stroke a day
    assert lowest.nl_per_day == config.STROKE_NL
    assert lowest.strokes_due(0, 10 * DAY_MS + 1) == 10
