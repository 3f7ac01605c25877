# The clinician-set wall clock: the day and time of day that select flex-dosing steps.
#
# The Pico has no battery-backed clock, so the wall clock is whatever a clinician last
# set, moved on by the pump's own elapsed time. Elapsed time drives every dose integral;
# the wall clock only picks which step's rate applies (docs/programs.md, "Setting the
# clock"). Days count from 2000-01-01, a Saturday.

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

DAY_MS = const(86400000)
DAY_MAX = const(73048)  # 2199-12-31
_WEEKDAY_OF_DAY_0 = const(5)  # Monday = 0, so 2000-01-01 (a Saturday) is 5


class WallClock:
    def __init__(self):
        self.valid = False  # set by a clinician (or restored from a snapshot)
        self.restored = False  # taken from a snapshot after a restart: time lost while off
        self.day = 0
        self.ms = 0

    def advance(self, elapsed_ms):
        ms = self.ms + elapsed_ms
        while ms >= DAY_MS:
            ms -= DAY_MS
            self.day += 1
        self.ms = ms

    def set(self, day, ms):
        self.valid = True
        self.restored = False
        self.day = day
        self.ms = ms

    def weekday(self):
        return (self.day + _WEEKDAY_OF_DAY_0) % 7

    def to_wire(self):
        return {"day": self.day, "ms": self.ms, "valid": self.valid, "restored": self.restored}
