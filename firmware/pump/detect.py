# Detectors that turn sensor readings into alarm conditions: downstream occlusion and
# pressure-sensor faults, from one pressure sample per stroke; supply voltage bands.
#
# Occlusion: a blocked line stores each stroke in the tubing's compliance, so the
# pressure steps up stroke by stroke; an open line lets it drain to the patient before
# the next sample. The detector takes the median of the last three samples (one cough
# or one bad reading is never an occlusion) and compares it with a baseline that
# follows the slow changes of the pressure at the catheter tip (posture, CSF pressure),
# but only while the line looks open. An occlusion is an excess over the baseline above
# OCCLUSION_MBAR; it is over when the excess falls below half of that.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# Sized against the simulated head (docs/simulator.md): a 250 nL stroke into a blocked
# line adds about 200 mbar, so the median of three crosses 300 mbar with the third
# stroke into the blockage (the target: within 3 strokes), while the open line's
# pressure stays within some tens of mbar of its baseline.
OCCLUSION_MBAR = const(300)
BASELINE_SHIFT = const(4)  # the baseline moves 1/16 of the way per open-line sample
# A raw reading this close to either rail is a broken wire or a shorted sensor, not a
# pressure; a reading that does not move at all for this many samples is stuck (a live
# sensor and ADC always show a few counts of noise).
RAIL_RAW = const(655)  # 1 % of the ADC span
STUCK_SAMPLES = const(64)
# A noisy sensor jumps up and down; an occlusion only climbs. A reading more than
# JUMP_MBAR from the one before, in the other direction from the last such jump, counts
# toward noise; NOISY_JUMPS of them (each one that is not a jump takes one back) is a
# fault, and the fault holds until CALM_SAMPLES readings in a row are not jumps (the
# hysteresis: a noisy sensor's count hovers at the threshold, and without it the alarm
# came and went every few readings, letting noise into the occlusion detector between).
JUMP_MBAR = const(100)
NOISY_JUMPS = const(6)
CALM_SAMPLES = const(16)


class Pressure:
    def __init__(self, zero_raw, raw_per_bar):
        self.zero_raw = zero_raw
        self.raw_per_bar = raw_per_bar
        self.s1 = 0  # the two previous samples, mbar
        self.s2 = 0
        self.seen = 0  # samples so far (up to 3)
        self.baseline = 0
        self.have_baseline = False  # from the first sample, or restored after a restart
        self.excess = 0  # median minus baseline, mbar
        self.occluded = False
        self.last_raw = -1
        self.same = 0  # identical raw readings in a row
        self.last_mbar = 0
        self.jump_sign = 0  # direction of the last large jump
        self.jumps = 0  # alternating large jumps, less the calm readings since
        self.calm = 0  # readings in a row that were not jumps (up to CALM_SAMPLES)
        self.noisy = False
        self.fault = False

    def sample(self, raw):
        # One reading. Returns True when the occlusion or fault state changed.
        fault = raw < RAIL_RAW or raw > 65535 - RAIL_RAW
        if raw == self.last_raw:
            self.same += 1
            if self.same >= STUCK_SAMPLES:
                fault = True
        else:
            if self.last_raw >= 0:
                self.same = 0
            # (after a restart with the fault: the first reading proves nothing; the
            # sensor shows life when the next one differs from it)
            self.last_raw = raw
        mbar = (raw - self.zero_raw) * 1000 // self.raw_per_bar
        if self._noisy(mbar):
            fault = True
        if fault != self.fault:
            self.fault = fault
            return True
        if fault:
            return False
        return self._occlusion(mbar)

    def restore_fault(self):
        # A restart while the sensor was faulty: the fault holds until the sensor proves
        # itself again (two readings that differ, sixteen calm ones), not until the
        # counts that found it have filled up once more.
        self.fault = True
        self.same = STUCK_SAMPLES
        self.last_raw = -1
        self.noisy = True
        self.jumps = NOISY_JUMPS
        self.calm = 0

    def _noisy(self, mbar):
        d = mbar - self.last_mbar
        self.last_mbar = mbar
        if d > JUMP_MBAR or d < -JUMP_MBAR:
            self.calm = 0
            sign = 1 if d > 0 else -1
            if sign != self.jump_sign:
                self.jump_sign = sign
                if self.jumps < NOISY_JUMPS:
                    self.jumps += 1
        else:
            if self.calm < CALM_SAMPLES:
                self.calm += 1
            if self.jumps:
                self.jumps -= 1
        if self.jumps >= NOISY_JUMPS:
            self.noisy = True
        elif self.calm >= CALM_SAMPLES:
            self.noisy = False
        return self.noisy

    def _occlusion(self, mbar):
        a = self.s2
        b = self.s1
        self.s2 = b
        self.s1 = mbar
        if self.seen < 3:
            # the first samples fill the median; a baseline restored after a restart is
            # kept (a line that was blocked before the restart must not become the norm)
            self.seen += 1
            if not self.have_baseline:
                self.baseline = mbar
                self.have_baseline = self.seen == 3
            return False
        # median of a, b, mbar
        if a > b:
            a, b = b, a
        med = b if mbar > b else (a if mbar < a else mbar)
        excess = med - self.baseline
        self.excess = excess
        was = self.occluded
        if excess > OCCLUSION_MBAR:
            self.occluded = True
        elif excess < OCCLUSION_MBAR // 2:
            self.occluded = False
            if excess < OCCLUSION_MBAR // 4:
                self.baseline += excess >> BASELINE_SHIFT  # an arithmetic shift: floor
        return self.occluded != was


class Supply:
    # The supply voltage in three bands: fine, low (warn), end of service (stop before
    # the motor can no longer be driven and the state written). Each band is left only
    # HYSTERESIS_MV above its threshold, so a voltage hovering at a threshold does not
    # raise and clear an alarm over and over.
    HYSTERESIS_MV = 100

    def __init__(self, low_mv, end_mv):
        self.low_mv = low_mv
        self.end_mv = end_mv
        self.band = 0  # 0 fine, 1 low, 2 end of service
        self.mv = 0

    def sample(self, mv):
        # Returns True when the band changed.
        self.mv = mv
        hold = self.HYSTERESIS_MV
        if mv <= self.end_mv or (self.band == 2 and mv < self.end_mv + hold):
            band = 2
        elif mv <= self.low_mv or (self.band >= 1 and mv < self.low_mv + hold):
            band = 1
        else:
            band = 0
        if band != self.band:
            self.band = band
            return True
        return False
