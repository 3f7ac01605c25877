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
HOUR_SLOTS = const(25)  # the hours 289 buckets can touch
_SERIALS = const(300)  # HOUR_SLOTS * _PER_HOUR: bucket numbers wrap here
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
    # Buckets of 5 minutes in RAM, and beside them hourly sums kept as strokes are counted
    # (each hour = 12 consecutive buckets), which are what the state file stores: a
    # state write copies 25 numbers, it does not walk the 289 buckets.
    def __init__(self):
        self.buckets = [0] * BUCKETS  # ng; index `head` is the newest
        self.head = 0
        self.total_ng = 0
        self.pg = 0  # sub-ng remainder carried to the next stroke
        self.bucket_left_ms = BUCKET_MS
        self.serial = 0  # buckets begun since the record started, modulo HOUR_SLOTS * 12
        self.hours = [0] * HOUR_SLOTS  # ng per hour of buckets still in the window

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
            self._next_bucket()

    def _next_bucket(self):
        self.head = (self.head + 1) % BUCKETS
        old = self.buckets[self.head]
        if old:
            # the bucket that leaves the window began BUCKETS buckets ago
            self.hours[(self.serial + _SERIALS - BUCKETS + 1) // _PER_HOUR % HOUR_SLOTS] -= old
            self.total_ng -= old
            self.buckets[self.head] = 0
        self.serial = (self.serial + 1) % _SERIALS
        if self.serial % _PER_HOUR == 0:
            self.hours[self.serial // _PER_HOUR] = 0  # (already empty: 25 h ago)

    def add_pg(self, pg):
        pg += self.pg
        ng = pg // 1000
        self.pg = pg - ng * 1000
        self.buckets[self.head] += ng
        self.hours[self.serial // _PER_HOUR] += ng
        self.total_ng += ng

    def write_record(self, out, extra_ng):
        # [buckets begun in the newest hour (1..12), [ng per hour, newest first]] into a
        # pump.record.Out; extra_ng is added to the newest hour (the lease, pump.persist)
        h = self.serial // _PER_HOUR
        out.raw(b"[")
        out.int(self.serial % _PER_HOUR + 1)
        out.raw(b",[")
        k = 0
        while k < HOUR_SLOTS:
            if k:
                out.raw(b",")
            out.int(self.hours[(h - k) % HOUR_SLOTS] + (extra_ng if k == 0 else 0))
            k += 1
        out.raw(b"]]")

    def restore(self, hours_newest_first, in_newest=_PER_HOUR):
        # As if no time passed while the power was off, each hour's drug in the newest
        # bucket of its hour: it can only leave the window later than it really would,
        # never sooner. in_newest: buckets begun in the newest hour (older records: 12).
        self.__init__()
        self.serial = in_newest - 1
        offset = 0  # buckets back from the newest
        for k in range(len(hours_newest_first)):
            if k >= HOUR_SLOTS or offset >= BUCKETS:
                break
            ng = hours_newest_first[k]
            self.buckets[(-offset) % BUCKETS] += ng
            self.hours[(self.serial - offset) // _PER_HOUR % HOUR_SLOTS] += ng
            self.total_ng += ng
            offset += in_newest if k == 0 else _PER_HOUR
