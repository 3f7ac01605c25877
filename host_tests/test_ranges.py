# Range guard: whatever the program, every integer the core keeps stays within +-2**29,
# and every integer a core function holds in a local stays a Pico small int (|x| < 2**30),
# so the RP2040 never allocates a long int on the dosing paths. Hosts have 62-bit small
# ints and would never show the difference, hence this test.
import itertools
import os
import sys

import pytest

from corekit import Bench, make_pump
from pump.program import NL_PER_ML

STATE_LIMIT = 1 << 29
SMALL_INT_LIMIT = 1 << 30
DAY_MS = 86400000
PUMP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware", "pump")


def _ints(obj, path, seen, out):
    if id(obj) in seen:
        return
    if isinstance(obj, bool) or obj is None:
        return
    if isinstance(obj, int):
        out.append((path, obj))
        return
    if isinstance(obj, (bytes, bytearray, str)):
        return
    seen.add(id(obj))
    if isinstance(obj, dict):
        for k, v in obj.items():
            _ints(v, "%s[%r]" % (path, k), seen, out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _ints(v, "%s[%d]" % (path, i), seen, out)
    elif hasattr(obj, "__dict__"):
        for k, v in vars(obj).items():
            _ints(v, path + "." + k, seen, out)


def state_ints(pump):
    out = []
    _ints(pump, "pump", set(), out)
    return out


class LocalsGuard:
    # sys.settrace hook: checks int locals of every frame running core code, line by line.
    def __init__(self):
        self.worst = (0, None)
        self.violations = []

    def __call__(self, frame, event, arg):
        if not frame.f_code.co_filename.startswith(PUMP_DIR):
            return None
        self._check(frame)
        return self._local

    def _local(self, frame, event, arg):
        self._check(frame)
        return self._local

    def _check(self, frame):
        for name, v in frame.f_locals.items():
            if type(v) is int:
                if abs(v) > self.worst[0]:
                    self.worst = (abs(v), "%s:%s" % (frame.f_code.co_name, name))
                if not -SMALL_INT_LIMIT <= v < SMALL_INT_LIMIT:
                    self.violations.append((frame.f_code.co_name, name, v))


def _dose_range(stroke_nl, conc, max_nl_per_day):
    lo = max(1, -(-stroke_nl * conc // NL_PER_ML))
    hi = min(3000, max_nl_per_day // 1000 * conc // 1000)
    return lo, hi


EXTREMES = list(itertools.product(
    (10, 250, 20000),  # stroke_nl: the whole calibration range
    (10, 5000),  # conc_ug_per_ml
    ("min", "max"),  # dose
))


@pytest.mark.parametrize("stroke_nl,conc,which", EXTREMES)
def test_full_range_programs_stay_in_small_ints(stroke_nl, conc, which):
    max_nl_per_day = 100000000  # the largest the core accepts
    pump = make_pump(stroke_nl=stroke_nl, stroke_ms=1 if stroke_nl < 100 else 160,
                     capacity_nl=100000000, max_nl_per_day=max_nl_per_day,
                     status_period_ms=DAY_MS)
    lo, hi = _dose_range(stroke_nl, conc, max_nl_per_day)
    if lo > hi:
        pytest.skip("no deliverable dose for this head and concentration")
    dose = lo if which == "min" else hi
    b = Bench(pump, start_ticks=(1 << 30) - 1000)
    guard = LocalsGuard()
    sys.settrace(guard)
    try:
        b.boot()
        assert pump.set_limits(b.board_now, {"max_rate_ng_per_day": 10000000, "max_24h_ng": 10000000,
                                             "max_bolus_ng": 10000000}) is None
        assert pump.fill(b.board_now, 100000000, conc) is None
        assert pump.set_program(b.board_now, {"drug": "x", "conc_ug_per_ml": conc, "dose_ug_per_day": dose}) is None
        # traced stepping is slow: stop after ~1500 strokes or 30 days, whichever first;
        # hops of up to an hour cross the tick wrap at the start
        hop_ms = max(1, min(3600000, 10 * 86400000 * stroke_nl * conc // (dose * NL_PER_ML)))
        while pump.basal.strokes < 1500 and pump.up_day < 30:
            b.advance(hop_ms)
            b.pump.received(b.board_now, b"~1 1 {\"cmd\":\"status\"} 00000000\n")
    finally:
        sys.settrace(None)
    assert not guard.violations, guard.violations[:5]
    bad = [(p, v) for p, v in state_ints(pump) if not -STATE_LIMIT <= v < STATE_LIMIT]
    assert not bad, bad


def test_long_run_state_stays_in_range_without_tracing():
    # 200 days with refills every two months: counters, uptime and the tick wrap
    # (16 wraps) all stay in range; checked every simulated day.
    pump = make_pump(stroke_nl=250, status_period_ms=DAY_MS)
    b = Bench(pump)
    b.boot()
    program = {"drug": "baclofen", "conc_ug_per_ml": 2000, "dose_ug_per_day": 600}  # 0.3 mL/day
    assert pump.fill(b.board_now, 20000000, 2000) is None
    assert pump.set_program(b.board_now, program) is None
    for day in range(200):
        b.advance(DAY_MS)
        if pump.reservoir.volume_nl < 2000000:
            assert pump.fill(b.board_now, 20000000, 2000) is None
        bad = [(p, v) for p, v in state_ints(pump) if not -STATE_LIMIT <= v < STATE_LIMIT]
        assert not bad, (day, bad)
    assert pump.up_day == 200
    assert pump.state == "running"


def test_the_guard_sees_a_big_local():
    # the guard itself must be able to fail
    guard = LocalsGuard()
    code = compile("def f():\n    x = 1 << 31\n    return x\n", os.path.join(PUMP_DIR, "probe.py"), "exec")
    ns = {}
    exec(code, ns)
    sys.settrace(guard)
    try:
        ns["f"]()
    finally:
        sys.settrace(None)
    assert guard.violations and guard.violations[0][1] == "x"
