# The stroke clock issues floor(integral of rate / stroke) strokes at every millisecond,
# carrying progress exactly across rate changes, pauses and the tick wrap.
from pump import ticks
from pump.strokes import DAY_SPLIT, StrokeClock

from boards.sim.rng import Rng


class Reference:
    # The integral in progress units (rate x ms), and strokes consumed, in big integers.
    def __init__(self):
        self.progress = 0
        self.strokes = 0

    def run(self, rate, ms):
        self.progress += rate * ms


def _walk(clock, ref, now, ms, rate, k, rng):
    # Advance `ms` in random hops (some landing exactly on deadlines) and check the
    # stroke count after every hop.
    issued = 0
    left = ms
    while left > 0:
        to_next = clock.ms_to_next(now)
        if to_next >= 0 and rng.below(2):
            hop = to_next
        else:
            hop = 1 + rng.below(left)
        if hop > left:
            hop = left
        now = ticks.add(now, hop)
        ref.run(rate, hop)
        left -= hop
        n = clock.due(now)
        issued += n
        ref.strokes += n
        assert ref.strokes * k * DAY_SPLIT <= ref.progress < (ref.strokes + 1) * k * DAY_SPLIT, (
            ref.strokes, ref.progress, k)
        _exact(clock, now, ref.progress - ref.strokes * k * DAY_SPLIT)
    return now, issued


def _exact(clock, now, expected):
    # The clock's own progress is the reference's to the last unit: no drift at all.
    hi, lo = clock.progress(now)
    assert hi * DAY_SPLIT + lo == expected, (hi, lo, expected)


def test_constant_rate_is_exact_through_a_tick_wrap():
    rng = Rng(3)
    clock = StrokeClock()
    ref = Reference()
    k = 250 * 2000  # 250 nL strokes of 2000 ug/mL drug, in pg
    rate = 300000  # 300 ug/day in ng/day
    now = ticks.from_board((1 << 30) - 5000)
    clock.start(now, rate, k)
    now, issued = _walk(clock, ref, now, 3 * 86400000, rate, k, rng)
    # 300 ug/day for 3 days = 900 ug; a stroke is 0.5 ug: exactly 1800 strokes
    assert issued == 1800


def test_rate_changes_carry_progress_unrounded():
    rng = Rng(5)
    clock = StrokeClock()
    ref = Reference()
    k = 250 * 500
    now = ticks.from_board(rng.below(1 << 30))
    clock.start(now, 0, k)
    for _ in range(60):
        rate = 0 if rng.below(6) == 0 else 1000 + rng.below(4000000)
        clock.due(now)
        clock.change(now, rate, k)
        now, _ = _walk(clock, ref, now, 1 + rng.below(20000000), rate, k, rng)


def test_stroke_size_changes_keep_the_drug_integral():
    # A new stroke size (e.g. another concentration at the catheter tip) keeps the
    # progress in drug already earned; strokes then come at the new size.
    rng = Rng(9)
    clock = StrokeClock()
    now = 0
    k = 125000
    clock.start(now, 200000, k)
    consumed = 0
    progress = 0
    for _ in range(40):
        ms = 1 + rng.below(5000000)
        rate = 10000 + rng.below(2000000)
        clock.due(now)
        clock.change(now, rate, k)
        end = ms
        t = 0
        while t < end:
            hop = 1 + rng.below(end - t)
            t += hop
            now = ticks.add(now, hop)
            progress += rate * hop
            consumed += clock.due(now) * k * DAY_SPLIT
            assert 0 <= progress - consumed < k * DAY_SPLIT
            _exact(clock, now, progress - consumed)
        clock.due(now)
        k = 5000 + rng.below(5000000)
        clock.change(now, rate, k)
        consumed += clock.due(now) * k * DAY_SPLIT
        assert 0 <= progress - consumed < k * DAY_SPLIT
        _exact(clock, now, progress - consumed)


def test_zero_rate_schedules_nothing_and_keeps_progress():
    clock = StrokeClock()
    clock.start(0, 86400000, 1000)  # one stroke per ms... per 1000/1000 unit: S = 86.4e6
    assert clock.due(0) == 0
    assert clock.due(1) == 1
    clock.change(1, 0, 1000)
    assert clock.ms_to_next(1) == -1
    assert clock.due(ticks.add(1, 10000000)) == 0
    clock.change(ticks.add(1, 10000000), 86400000, 1000)
    assert clock.due(ticks.add(1, 10000001)) == 1
