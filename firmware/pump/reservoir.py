# Reservoir accounting: what the rotor confirmed went out, and what is left.
#
# Only confirmed strokes (rotor sensor pulses) move these numbers; commanded strokes
# that never turned the rotor deliver nothing. Volumes in nL and drug in ng plus a pg
# remainder keep every number exact and below 2**29 for a full 40 mL reservoir.


class Reservoir:
    def __init__(self, stroke_nl):
        self.stroke_nl = stroke_nl
        self.conc_ug_per_ml = 0
        self.volume_nl = 0  # left in the reservoir
        self.delivered_nl = 0  # since the last fill
        self.delivered_ng = 0  # drug since the last fill, ng ...
        self.delivered_pg = 0  # ... plus this many pg (0..999)
        self.overdrawn_strokes = 0  # confirmed strokes with the account already at 0
        self._stroke_pg = 0

    def fill(self, volume_nl, conc_ug_per_ml):
        self.volume_nl = volume_nl
        self.conc_ug_per_ml = conc_ug_per_ml
        self.delivered_nl = 0
        self.delivered_ng = 0
        self.delivered_pg = 0
        self.overdrawn_strokes = 0
        self._stroke_pg = self.stroke_nl * conc_ug_per_ml

    def confirm(self, strokes):
        stroke = self.stroke_nl
        while strokes > 0:
            strokes -= 1
            if self.volume_nl >= stroke:
                self.volume_nl -= stroke
            else:
                self.volume_nl = 0
                self.overdrawn_strokes += 1
            self.delivered_nl += stroke
            pg = self.delivered_pg + self._stroke_pg
            if pg >= 1000:
                self.delivered_ng += pg // 1000
                pg %= 1000
            self.delivered_pg = pg
