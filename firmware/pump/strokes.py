# When to make each stroke so that strokes track a piecewise-constant rate exactly.
#
# Theory of operation. A rate is in units per day (the core uses ng/day of drug) and a
# stroke's size k is in thousandths of that unit (pg of drug per stroke). Progress
# accumulates rate x elapsed_ms, so one stroke is S = k/1000 x 86_400_000 = k x 86400 in
# progress units. For every whole millisecond t, the strokes issued by t are exactly
# floor(integral of rate up to t / stroke): each stroke fires at the first millisecond at
# or after the instant the integral crosses the next multiple of S.
#
# A clock can use another split than a day: a bolus of N strokes over T ms is the same
# machine with split = T, rate = N and k = 1 (S = T), which spaces N strokes exactly.
#
# Two rules keep it exact and small:
# 1. Progress is never rounded. Between strokes it is held as hi*86400 + lo at a
#    reference time; right after a stroke it is the overshoot `lo` < rate.
# 2. Within one rate (a segment) the interval between strokes is S/rate = q + r/rate ms,
#    walked Bresenham-style with small ints. Only a segment change (new rate or stroke
#    size) runs the slower exact long division in pump.exact.
from pump import ticks
from pump.exact import muldivmod

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

DAY_SPLIT = const(86400)  # S = k * DAY_SPLIT; 86_400_000 ms/day = DAY_SPLIT x 1000
_HALF = const(536870912)  # 2**29, as in pump.ticks
_PERIOD = const(1073741824)  # 2**30


class StrokeClock:
    def __init__(self, split=DAY_SPLIT):
        self.split = split  # S = k * split
        self.rate = 0  # units per day; 0 means no strokes fall due
        self.k = 1  # stroke size, thousandths of a unit
        self.q = 0  # S = q * rate + r
        self.r = 0
        self.t_ref = 0  # signed ticks where progress was hi*split + lo
        self.hi = 0
        self.lo = 0
        self.t_next = 0  # signed ticks of the next stroke (rate > 0)
        self.hi_next = 0  # progress right after that stroke
        self.lo_next = 0
        self.strokes = 0  # strokes issued since start()

    def start(self, now, rate, k):
        self.strokes = 0
        self.hi = 0
        self.lo = 0
        self.t_ref = now
        self.rate = 0
        self.change(now, rate, k)

    def change(self, now, rate, k):
        # A new segment from `now`: progress so far carries over unrounded.
        # Call due(now) first so no stroke before `now` is still pending.
        if self.rate:
            elapsed = ticks.diff(now, self.t_ref)
            hi, lo = muldivmod(elapsed, self.rate, self.lo, self.split)
            self.hi += hi
            self.lo = lo
        else:
            hi, lo = divmod(self.lo, self.split)
            self.hi += hi
            self.lo = lo
        self.t_ref = now
        self.rate = rate
        self.k = k
        if rate:
            self.q, self.r = muldivmod(k, self.split, 0, rate)
            self._schedule()

    def _schedule(self):
        rate = self.rate
        lo = self.lo
        if self.hi == 0 and lo < rate:
            # the steady state after a stroke: progress is the overshoot lo < rate
            if lo < self.r:
                dt = self.q + 1
                self.lo_next = lo + rate - self.r
            else:
                dt = self.q
                self.lo_next = lo - self.r
            self.hi_next = 0
        else:
            split = self.split
            if lo >= split:
                self.hi += lo // split
                lo = lo % split
                self.lo = lo
            if self.hi >= self.k:
                # the stroke got smaller than the progress already made: due now
                dt = 0
                self.hi_next = self.hi - self.k
                self.lo_next = lo
            else:
                # dt = ceil((S - P) / rate), overshoot = dt * rate - (S - P)
                dt, m = muldivmod(self.k - self.hi, split, rate - 1 - lo, rate)
                self.hi_next = 0
                self.lo_next = rate - 1 - m
        self.t_next = ticks.add(self.t_ref, dt)

    def due(self, now):
        # Strokes that fell due at or before `now`; advances past them. Runs every stroke:
        # the wrap-safe difference of pump.ticks is inlined.
        if not self.rate:
            return 0
        n = 0
        while True:
            d = now - self.t_next
            if d >= _HALF:
                d -= _PERIOD
            elif d < -_HALF:
                d += _PERIOD
            if d < 0:
                break
            n += 1
            self.t_ref = self.t_next
            self.hi = self.hi_next
            self.lo = self.lo_next
            self._schedule()
        self.strokes += n
        return n

    def drop_whole(self):
        # Forget whole strokes of progress (a stop: what fell due is missed, not owed);
        # the fraction of a stroke stays. Call after change() to rate 0.
        split = self.split
        if self.lo >= split:
            self.hi += self.lo // split
            self.lo %= split
        while self.hi >= self.k:
            self.hi -= self.k

    def due_one(self, now):
        # 1 if a stroke fell due at or before `now` (and advance past it), else 0
        if not self.rate or ticks.diff(now, self.t_next) < 0:
            return 0
        self.t_ref = self.t_next
        self.hi = self.hi_next
        self.lo = self.lo_next
        self._schedule()
        self.strokes += 1
        return 1

    def progress(self, now):
        # (hi, lo): progress toward the next stroke at `now`, hi*split + lo.
        if not self.rate:
            return self.hi, self.lo
        hi, lo = muldivmod(ticks.diff(now, self.t_ref), self.rate, self.lo, self.split)
        return self.hi + hi, lo

    def ms_to_next(self, now):
        # -1 when no stroke is scheduled
        if not self.rate:
            return -1
        d = ticks.diff(self.t_next, now)
        return d if d > 0 else 0
