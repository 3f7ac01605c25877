# One bolus at a time: clinician, priming or patient. A bolus of N strokes over T ms runs
# on its own exact stroke clock (split = T), on top of the basal rate (priming replaces
# it: no drug reaches the patient).
from pump.strokes import StrokeClock

CLINICIAN = "clinician"
PATIENT = "patient"
PRIME = "prime"


class Bolus:
    def __init__(self, kind, strokes, duration_ms, requested_ng, now):
        self.kind = kind
        self.strokes_total = strokes
        self.strokes_commanded = 0
        self.strokes_confirmed = 0
        self.strokes_unconfirmed = 0
        self.requested_ng = requested_ng  # drug asked for (priming: 0)
        self.delivered_ng = 0  # drug that left the catheter tip in this bolus's strokes
        self.delivered_pg = 0
        self.duration_ms = duration_ms
        self.clock = None
        if strokes:
            self.clock = StrokeClock(split=duration_ms)
            self.clock.start(now, strokes, 1)

    def restart(self, now):
        # Delivery (re)starts: the strokes not yet commanded go on from `now` at the
        # bolus's own pace, so a stop in between owes nothing.
        left = self.strokes_total - self.strokes_commanded
        if self.clock is None or left <= 0:
            return
        ms = self.duration_ms // self.strokes_total * left
        self.clock = StrokeClock(split=ms if ms > 0 else 1)
        self.clock.start(now, left, 1)

    def due(self, now):
        if self.clock is None:
            return 0
        n = self.clock.due(now)
        left = self.strokes_total - self.strokes_commanded
        return n if n < left else left

    def commanded_all(self):
        return self.clock is not None and self.strokes_commanded >= self.strokes_total

    def settled(self):
        # every stroke commanded has been confirmed or given up on
        return self.strokes_confirmed + self.strokes_unconfirmed >= self.strokes_commanded

    def confirm(self, pg):
        pg += self.delivered_pg
        self.delivered_ng += pg // 1000
        self.delivered_pg = pg % 1000
        self.strokes_confirmed += 1

    def write_record(self, out):
        # into a pump.record.Out: the numbers restore_record() takes back
        out.ints((self.strokes_total, self.strokes_commanded, self.strokes_confirmed, self.strokes_unconfirmed,
                  self.requested_ng, self.delivered_ng, self.delivered_pg, self.duration_ms))

    def restore_record(self, rec):
        (self.strokes_total, self.strokes_commanded, self.strokes_confirmed, self.strokes_unconfirmed,
         self.requested_ng, self.delivered_ng, self.delivered_pg, self.duration_ms) = rec[0]

    def to_wire(self):
        return {"kind": self.kind, "strokes_total": self.strokes_total,
                "strokes_commanded": self.strokes_commanded,
                "strokes_confirmed": self.strokes_confirmed,
                "requested_ng": self.requested_ng, "delivered_ng": self.delivered_ng,
                "duration_ms": self.duration_ms}
