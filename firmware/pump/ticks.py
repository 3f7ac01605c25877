# Wrap-safe millisecond arithmetic for the RP2040's 2**30 tick counter.
#
# The core stores times as "signed ticks": a board tick t in [0, 2**30) is kept as
# t - 2**29, in [-2**29, 2**29). Every stored time is then within the RP2040's
# small-int range with room for one addition, so no time arithmetic allocates.
# Differences are valid while the two times are less than 2**29 ms (6.2 days) apart;
# the core never lets a deadline lie further out than that.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

HALF = const(536870912)  # 2**29
_MASK = const(1073741823)  # 2**30 - 1
MAX_DELAY_MS = const(536870911)  # the furthest a deadline may lie ahead


def from_board(t):
    # board ticks [0, 2**30) -> signed ticks
    return t - HALF


def to_board(s):
    # signed ticks -> board ticks [0, 2**30)
    return s + HALF


def add(s, delta_ms):
    # delta_ms in [0, 2**29)
    s += delta_ms
    if s >= HALF:
        s = s - _MASK - 1
    return s


def sub(s, delta_ms):
    # delta_ms in [0, 2**29)
    s -= delta_ms
    if s < -HALF:
        s = s + _MASK + 1
    return s


def diff(a, b):
    # a - b for signed ticks less than 2**29 ms apart
    d = a - b
    if d >= HALF:
        d = d - _MASK - 1
    elif d < -HALF:
        d = d + _MASK + 1
    return d
