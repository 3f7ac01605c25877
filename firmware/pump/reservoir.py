# Reservoir accounting: what the rotor confirmed went out, and what is left.
#
# Only confirmed strokes (rotor sensor pulses) move these numbers; commanded strokes
# that never turned the rotor deliver nothing. Volumes in nL stay below 2**29 for any
# reservoir the core accepts (PumpConfig: up to 100 mL). The drug that reached the
# patient is counted where it leaves the catheter tip (pump.line, pump.core).


class Reservoir:
    def __init__(self, stroke_nl):
        self.stroke_nl = stroke_nl
        self.conc_ug_per_ml = 0
        self.volume_nl = 0  # left in the reservoir
        self.delivered_nl = 0  # pumped out of it since the last fill
        self.overdrawn_strokes = 0  # confirmed strokes with the account already at 0

    def fill(self, volume_nl, conc_ug_per_ml):
        self.volume_nl = volume_nl
        self.conc_ug_per_ml = conc_ug_per_ml
        self.delivered_nl = 0
        self.overdrawn_strokes = 0

    def unconfirmed(self, strokes):
        # Strokes the rotor did not confirm may still have turned (a missed pulse): what
        # is left is debited for them, never over-stated; nothing counts as delivered.
        v = self.volume_nl - strokes * self.stroke_nl
        self.volume_nl = v if v > 0 else 0

    def confirm(self, strokes):
        nl = strokes * self.stroke_nl
        self.delivered_nl += nl
        v = self.volume_nl - nl
        if v < 0:
            self.overdrawn_strokes += (-v + self.stroke_nl - 1) // self.stroke_nl
            v = 0
        self.volume_nl = v
