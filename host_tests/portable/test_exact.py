# muldivmod gives exactly (a*b + c) divmod d over its whole stated domain.
from pump.exact import muldivmod

from boards.sim.rng import Rng


def test_matches_big_integer_arithmetic():
    rng = Rng(11)
    checked = 0
    while checked < 2000:
        a = rng.below(1 << 29)
        b = rng.below(1 << 28)
        d = 1 + rng.below((1 << 28) - 1)
        c = rng.below(1 << 28) - (1 << 27)
        v = a * b + c
        if v < 0 or v // d >= (1 << 29):
            continue
        assert muldivmod(a, b, c, d) == (v // d, v % d), (a, b, c, d)
        checked += 1


def test_edges():
    assert muldivmod(0, 5, 3, 7) == (0, 3)
    assert muldivmod(1, 0, 0, 1) == (0, 0)
    assert muldivmod(1, 1, -1, 3) == (0, 0)
    assert muldivmod((1 << 29) - 1, 1, 0, 1) == ((1 << 29) - 1, 0)
    assert muldivmod(250 * 2000, 86400, 0, 400000) == divmod(250 * 2000 * 86400, 400000)
