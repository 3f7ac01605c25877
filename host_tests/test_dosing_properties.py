# Property: for any valid program and any sequence of dose changes, the strokes issued at
# every instant are exactly floor(programmed drug / drug per stroke), and the confirmed
# deliveries stay within one stroke of it, over 40+ days and several 2**30 ms tick wraps.
from hypothesis import given, settings
from hypothesis import strategies as st

from pump.program import NL_PER_ML
from corekit import Bench, make_pump

DAY_MS = 86400000
DAYS = 41  # > 3 x 12.43 days: at least three tick wraps
MAX_STROKES_PER_DAY = 6000  # keeps an example fast on CPython
FILL_NL = 40000000
MAX_NL_PER_DAY = FILL_NL // DAYS - 1000000  # the reservoir must not run dry mid-property


@st.composite
def therapies(draw):
    stroke_nl = draw(st.sampled_from([100, 250, 500, 1000]) | st.integers(50, 2000))
    conc = draw(st.sampled_from([50, 500, 2000]) | st.integers(10, 5000))

    def dose():
        # any dose this head can deliver, capped so the example stays fast
        lo = -(-stroke_nl * conc // NL_PER_ML)
        hi = min(3000, MAX_STROKES_PER_DAY * stroke_nl * conc // NL_PER_ML,
                 MAX_NL_PER_DAY * conc // NL_PER_ML)
        return st.integers(max(lo, 1), max(hi, max(lo, 1)))

    first = draw(dose())
    changes = draw(st.lists(st.tuples(st.integers(1, DAYS * DAY_MS - 1), dose()), max_size=6))
    hops = draw(st.lists(st.integers(1, 5 * 3600000), min_size=1, max_size=8))
    start = draw(st.integers(0, (1 << 30) - 1))
    return stroke_nl, conc, first, sorted(changes), hops, start


@settings(max_examples=30)
@given(therapies())
def test_strokes_track_the_programmed_integral_exactly(therapy):
    stroke_nl, conc, first, changes, hops, start = therapy
    pump = make_pump(stroke_nl=stroke_nl, status_period_ms=DAY_MS // 4)
    b = Bench(pump, start_ticks=start)
    b.boot()
    program = {"drug": "baclofen", "conc_ug_per_ml": conc, "dose_ug_per_day": first}
    assert pump.fill(b.board_now, FILL_NL, conc) is None
    assert pump.set_program(b.board_now, program) is None
    stroke_units = stroke_nl * conc * 86400  # progress units (ng*ms/day) per stroke
    dose_ng = first * 1000
    integral = 0  # exact programmed drug so far, ng*ms/day
    now_ms = 0
    wraps = 0
    hop_i = 0
    end = DAYS * DAY_MS
    while now_ms < end:
        # next sample: a core deadline exactly, one ms before it, or a random hop (the
        # core catches up on every stroke that fell due in between)
        wait = pump.tick(b.board_now)
        b._collect()
        kind = hop_i % 8
        hop = wait if kind == 0 else (wait - 1 if kind == 1 else hops[hop_i % len(hops)])
        hop_i += 1
        hop = max(1, min(hop, end - now_ms))
        if changes and now_ms + hop >= changes[0][0]:
            hop = max(0, changes[0][0] - now_ms)
        integral += dose_ng * hop
        now_ms += hop
        before = b.board_now
        b.board_now = (b.board_now + hop) & ((1 << 30) - 1)
        wraps += b.board_now < before
        pump.tick(b.board_now)
        b._collect()
        commanded = b.in_motor
        b.in_motor = 0
        if commanded:
            pump.rotor(b.board_now, commanded)
        expected = integral // stroke_units
        assert pump.basal.strokes == expected, (now_ms, pump.basal.strokes, expected)
        assert expected - pump.strokes_confirmed <= 1
        if changes and now_ms == changes[0][0]:
            _, new = changes.pop(0)
            assert pump.set_program(b.board_now, dict(program, dose_ug_per_day=new)) is None
            dose_ng = new * 1000
    assert wraps >= 3
    # and in volume terms: delivered nL within one stroke of the programmed volume
    programmed_nl = integral * 1000 // (conc * 86400000)
    assert programmed_nl // stroke_nl - pump.reservoir.delivered_nl // stroke_nl <= 1
