# Hard limits (maximum rate, maximum drug in any rolling 24 h, maximum single bolus) and
# the record of drug commanded over the last 24 h that enforces them.
#
# The window is kept in 5-minute buckets, 289 of them, so their sum always covers at
# least the last 24 h: it can only over-state what a 24 h window holds, never under-state
# it. Strokes are counted when commanded (a stroke that may still be turning counts).
# Drug is counted in ng with the sub-ng remainder carried, so the sum is exact to 1 ng.

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

BUCKET_MS = const(300000)
BUCKETS = const(289)  # 288 x 5 min = 24 h, plus the bucket being filled
_PER_HOUR = const(12)
DAY_MS = const(86400000)

# Defaults until a clinician sets the pump's own (set_limits). Chosen to sit above
# labelled maintenance doses of intrathecal baclofen (most patients 300-800 ug/day,
# some up to about 2000 ug/day: Lioresal Intrathecal labelling); a clinician sets
# tighter, per-patient limits.
MAX_RATE_NG_PER_DAY_DEFAULT = const(2000000)
MAX_24H_NG_DEFAULT = const(2500000)
MAX_BOLUS_NG_DEFAULT = const(200000)
LIMIT_NG_MIN = const(1000)  # what set_limits accepts: 1 ug ...
LIMIT_NG_MAX = const(10000000)  # ... to 10 mg


class Limits:
    def __init__(self):
        self.max_rate_ng_per_day = MAX_RATE_NG_PER_DAY_DEFAULT
        self.max_24h_ng = MAX_24H_NG_DEFAULT
        self.max_bolus_ng = MAX_BOLUS_NG_DEFAULT

    def to_dict(self):
        return {"max_rate_ng_per_day": self.max_rate_ng_per_day, "max_24h_ng": self.max_24h_ng,
                "max_bolus_ng": self.max_bolus_ng}


class Window:
    def __init__(self):
        self.buckets = [0] * BUCKETS  # ng; index `head` is the newest
        self.head = 0
        self.total_ng = 0
        self.pg = 0  # sub-ng remainder carried to the next stroke
        self.bucket_left_ms = BUCKET_MS

    def advance(self, elapsed_ms):
        # time passed: retire buckets older than 24 h (runs on the stroke path: small)
        left = self.bucket_left_ms - elapsed_ms
        if left > 0:
            self.bucket_left_ms = left
        else:
            self._rotate(-left)

    def _rotate(self, over_ms):
        steps = 1 + over_ms // BUCKET_MS
        self.bucket_left_ms = BUCKET_MS - over_ms % BUCKET_MS
        if steps > BUCKETS:
            steps = BUCKETS
        while steps:
            steps -= 1
            self.head = (self.head + 1) % BUCKETS
            self.total_ng -= self.buckets[self.head]
            self.buckets[self.head] = 0

    def add_pg(self, pg):
        pg += self.pg
        ng = pg // 1000
        self.pg = pg - ng * 1000
        self.buckets[self.head] += ng
        self.total_ng += ng

    def ng_if(self, pg):
        # the 24 h total if pg more were commanded now
        return self.total_ng + (self.pg + pg + 999) // 1000

    def within(self, j):
        # drug in the buckets that still lie inside a 24 h window ending j buckets from
        # now: all but the j oldest
        b = self.buckets
        old = 0
        i = (self.head + 1) % BUCKETS  # the oldest
        for _ in range(j):
            old += b[i]
            i = (i + 1) % BUCKETS
        return self.total_ng - old

    def to_wire(self):
        # Hourly sums, newest hour first (25 numbers instead of 289). Restored as if no
        # time passed while the power was off, each hour's drug at the newest end of its
        # hour: it can only leave the window later than it really would, never sooner.
        out = []
        i = self.head
        total = 0
        for j in range(BUCKETS):
            total += self.buckets[i]
            i = (i - 1) % BUCKETS
            if j % _PER_HOUR == _PER_HOUR - 1 or j == BUCKETS - 1:
                out.append(total)
                total = 0
        while out and out[-1] == 0:
            out.pop()
        return out

    def restore(self, hours_newest_first):
        self.buckets = [0] * BUCKETS
        self.head = 0
        self.total_ng = 0
        for h, ng in enumerate(hours_newest_first[:BUCKETS // _PER_HOUR + 1]):
            j = h * _PER_HOUR  # the newest bucket of that hour
            self.buckets[(-j) % BUCKETS] = ng
            self.total_ng += ng
