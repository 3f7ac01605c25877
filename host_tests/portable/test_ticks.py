# Wrap-safe tick arithmetic agrees with plain modular arithmetic at and around the wrap.
from pump import ticks

from boards.sim.rng import Rng

PERIOD = 1 << 30


def _ref_diff(a_board, b_board):
    d = (a_board - b_board) % PERIOD
    return d - PERIOD if d >= PERIOD // 2 else d


def test_diff_and_add_match_modular_arithmetic_at_random_points():
    rng = Rng(7)
    for _ in range(3000):
        a = rng.below(PERIOD)
        delta = rng.below(PERIOD // 2)
        sa = ticks.from_board(a)
        sb = ticks.add(sa, delta)
        assert ticks.to_board(sb) == (a + delta) % PERIOD
        assert ticks.diff(sb, sa) == delta
        assert ticks.sub(sb, delta) == sa
        assert ticks.diff(sa, sb) == -delta
        b = rng.below(PERIOD)
        assert ticks.diff(ticks.from_board(a), ticks.from_board(b)) == _ref_diff(a, b)


def test_the_wrap_itself():
    last = ticks.from_board(PERIOD - 1)
    first = ticks.from_board(0)
    assert ticks.add(last, 1) == first
    assert ticks.diff(first, last) == 1
    assert ticks.diff(last, first) == -1


def test_stored_ticks_stay_within_2_29():
    for t in (0, 1, PERIOD // 2, PERIOD - 1):
        s = ticks.from_board(t)
        assert -(1 << 29) <= s < (1 << 29)
