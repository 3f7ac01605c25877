# What fills the pump tubing and the catheter, tip first: which drug reaches the patient.
#
# The line is a first-in first-out column of fluid as long as the dead volume. Each
# confirmed stroke pushes one stroke of reservoir fluid in at the pump end and the same
# volume out at the catheter tip. So after a refill with a new concentration the old
# drug keeps coming out until the dead volume has been pushed (the bridge), and after
# the line was emptied (implant, catheter revision) priming fluid reaches the patient
# as no drug at all. Segments are [volume_nl, conc_ug_per_ml]; nL x ug/mL = pg.
# The core refuses a refill that would queue more than a few concentrations, so the
# list stays short.

class Line:
    def __init__(self):
        self.segments = []  # tip first
        self.volume_nl = 0

    def reset(self, volume_nl, conc):
        self.volume_nl = volume_nl
        self.segments = [[volume_nl, conc]] if volume_nl else []

    def uniform(self):
        return len(self.segments) <= 1

    def tip_conc(self):
        return self.segments[0][1] if self.segments else -1

    def empty_from_tip(self, volume_nl):
        # Part of the line (from the tip) holds no drug: a new or revised catheter.
        if volume_nl > self.volume_nl:
            volume_nl = self.volume_nl
        self._take(volume_nl)
        self.segments.insert(0, [volume_nl, 0])
        self._merge()

    def pg_of(self, offset_nl, volume_nl, reservoir_conc):
        # Drug in the slice [offset, offset + volume) counted from the tip; past the end
        # of the line comes reservoir fluid. Runs every stroke of a bridge: few locals and
        # no for-loop iterator (a MicroPython frame over 11 words goes on the heap).
        pg = 0
        i = 0
        volume_nl += offset_nl  # from here on: the slice's end
        while i < len(self.segments):
            # offset and end are taken relative to the start of each segment in turn
            pg += _seg_pg(self.segments[i], offset_nl, volume_nl)
            offset_nl -= self.segments[i][0]
            volume_nl -= self.segments[i][0]
            if volume_nl <= 0:
                return pg
            i += 1
        return pg + (volume_nl - (offset_nl if offset_nl > 0 else 0)) * reservoir_conc

    def holds_other(self, conc):
        # True while the line holds drug of a strength other than `conc` (priming fluid,
        # no drug, does not count)
        for seg in self.segments:
            if seg[1] != conc and seg[1] != 0:
                return True
        return False

    def push(self, volume_nl, conc):
        # Pump volume_nl of reservoir fluid (conc) in; returns the pg that left the tip.
        if not self.volume_nl:
            return volume_nl * conc
        out = self.pg_of(0, volume_nl, conc)
        if volume_nl >= self.volume_nl:
            self.segments = [[self.volume_nl, conc]]
            return out
        self._take(volume_nl)
        last = self.segments[-1] if self.segments else None
        if last is not None and last[1] == conc:
            last[0] += volume_nl
        else:
            self.segments.append([volume_nl, conc])
        self._merge()
        return out

    def nl_unlike(self, conc):
        # Volume, from the tip, before fluid of `conc` reaches it: the bridge still to go.
        nl = 0
        for seg_nl, c in self.segments:
            if c == conc:
                break
            nl += seg_nl
        return nl

    def _take(self, volume_nl):
        # remove volume_nl from the tip end
        segs = self.segments
        while volume_nl > 0 and segs:
            if segs[0][0] <= volume_nl:
                volume_nl -= segs[0][0]
                segs.pop(0)
            else:
                segs[0][0] -= volume_nl
                volume_nl = 0

    def _merge(self):
        # drop empty segments, join neighbours of one concentration
        segs = self.segments
        i = 0
        while i < len(segs):
            if segs[i][0] == 0:
                segs.pop(i)
            elif i + 1 < len(segs) and segs[i][1] == segs[i + 1][1]:
                segs[i + 1][0] += segs[i][0]
                segs.pop(i)
            else:
                i += 1

    def to_wire(self):
        return [[v, c] for v, c in self.segments]


def _seg_pg(seg, lo, hi):
    # the drug of a segment [volume_nl, conc] within [lo, hi), relative to its start
    if hi > seg[0]:
        hi = seg[0]
    if lo < 0:
        lo = 0
    return (hi - lo) * seg[1] if hi > lo else 0
