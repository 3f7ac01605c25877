# The simulated downstream line: what happens to a stroke after it leaves the pump head,
# and what the pressure sensor between head and catheter reads. Integers only (the same
# run on MicroPython and CPython); docs/simulator.md explains the model and its sources.
#
# Theory of operation. The line (pump tubing + catheter) is a compliance C in front of a
# resistance R. A stroke lands in the compliance at once; the volume stored there raises
# the line pressure above the CSF pressure at the catheter tip by stored / C, and drains
# to the patient through R, exponentially with the time constant R*C (kept here as a
# half-life). An occlusion raises R: a partial one to a long half-life, a full one to no
# outflow. Two rules: every nanolitre is accounted for (pumped = delivered + stored,
# exactly), and the stored volume is computed from the last stroke (its "reference"),
# never step by step, so how often anything looks at the line does not change it.
from boards.sim.rng import Rng

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# Compliance, as line pressure per stored volume. Assumption (the alarm work's sizing):
# one 250 nL stroke into a fully blocked line raises its pressure by 200 mbar, i.e.
# C = 1.25 nL/mbar for tubing plus catheter.
LINE_UBAR_PER_NL = const(800)
# Open catheter, from Poiseuille: R = 8 mu L / (pi r^4) with r = 0.25 mm (0.5 mm inner
# diameter), L = 1 m (assumption) and mu = 1.0 mPa s (the top of CSF's 0.7-1 mPa s at
# 37 C, Bloomfield et al. 1998) gives R = 6.5e11 Pa s/m^3; with C = 1.25e-14 m^3/Pa,
# tau = R C = 8.1 ms, a half-life of 5.6 ms. A stroke has left the line about 60 ms
# after it landed, long before the next one (320 ms apart at the fastest rate).
OPEN_HALF_LIFE_MS = const(6)
# Partial occlusion (a kink, fibrosis at the tip): default half-life. Assumption, chosen
# for its effect: at 0.15 mL/day (a stroke every 144 s) the line drains between strokes
# and settles ~150 mbar up; from 0.4 mL/day and in boluses it builds past 500 mbar.
PARTIAL_HALF_LIFE_MS = const(120000)
# The head's rollers hold at most this much pressure above the CSF; beyond it a stroke
# leaks back past them into the reservoir (the rotor still turns and pulses). Assumption,
# kept inside the sensor's 0-4 bar span so a blocked line never reads like a broken wire.
HEAD_MAX_EXCESS_MBAR = const(3000)
STORED_MAX_NL = const(HEAD_MAX_EXCESS_MBAR * 1000 // LINE_UBAR_PER_NL)  # 3750 nL

# CSF pressure at the catheter tip (gauge). Lying adults: lumbar opening pressure about
# 6-25 cmH2O (Lee & Lueck 2014), 7-17 mmHg = 10-23 cmH2O lateral recumbent (Norager et
# al. 2021). Each seed draws a resting level in 10-20 cmH2O (1 cmH2O = 0.98 mbar).
CSF_REST_MIN_UBAR = const(9807)
CSF_REST_SPAN_UBAR = const(9806)
# Slow drift (posture, sleep): the level wanders between rest and rest + 15 mbar, in
# straight lines between points 5 min to 2 h apart. Assumption.
POSTURE_RANGE_UBAR = const(15000)
POSTURE_MIN_MS = const(300000)
POSTURE_SPAN_MS = const(6900000)
# Coughs: short spikes, 10 min to 4 h apart, 0.3-1.5 s long, 20-60 mbar high.
# Assumption; a Valsalva manoeuvre lifts lumbar CSF pressure to 25-47 cmH2O (Can J
# Ophthalmol 2005;40:775). Capped so that a clean line stays within 100 mbar of its
# slow baseline, where an occlusion detector has no business.
COUGH_GAP_MIN_MS = const(600000)
COUGH_GAP_SPAN_MS = const(13800000)
COUGH_MIN_MS = const(300)
COUGH_SPAN_MS = const(1200)
COUGH_MIN_UBAR = const(20000)
COUGH_SPAN_UBAR = const(40000)

# The sensor's ADC: the RP2040's is 12 bits, and read_u16() scales a code to 16 bits
# as code << 4 | code >> 8. Noise: uniform +-3 codes (2 codes RMS; a Pico's ADC alone
# shows about 1-1.4 codes RMS, the sensor's amplifier adds the rest: assumption).
NOISE_LSB = const(3)
RAIL_LSB = const(2)  # a disconnected input reads within this many codes of its rail

# Seeded streams (boards/sim/rng.py), one per source, so that drawing from one never
# shifts another: the world is the same however often the firmware looks at it.
STREAM_POSTURE = const(1)
STREAM_COUGH = const(2)
STREAM_NOISE = const(3)
STREAM_BATTERY = const(4)
STREAM_PULSES = const(5)
STREAM_FAULTS = const(6)


def stream(seed, which):
    return Rng(seed * 16 + which)


# floor(2**30 * 2**(-k/64)) for k = 0..64: what is left of a volume after k/64 of a
# half-life, in Q30 (host_tests/portable/test_fluid.py recomputes it with integers).
_KEEP_Q30 = (
    1073741824, 1062175491, 1050733750, 1039415260, 1028218693, 1017142735, 1006186086, 995347463,
    984625593, 974019220, 963527097, 953147996, 942880699, 932724000, 922676709, 912737648,
    902905650, 893179562, 883558244, 874040566, 864625413, 855311679, 846098273, 836984114,
    827968132, 819049270, 810226482, 801498733, 792864999, 784324268, 775875537, 767517816,
    759250124, 751071492, 742980960, 734977579, 727060410, 719228525, 711481005, 703816941,
    696235434, 688735595, 681316544, 673977411, 666717336, 659535465, 652430958, 645402980,
    638450708, 631573325, 624770026, 618040011, 611382492, 604796688, 598281826, 591837142,
    585461880, 579155293, 572916640, 566745189, 560640217, 554601008, 548626854, 542717052,
    536870912)


def keep_q30(dt_ms, half_life_ms):
    # 2**(-dt/half_life) in Q30, for dt below 16 half-lives: the table between its
    # points, linearly (never more than 0.6 % off the exponential's slope), then whole
    # half-lives as shifts.
    e = (dt_ms << 6) // half_life_ms
    dt_ms = (dt_ms << 6) - e * half_life_ms  # what is left over, in 1/64 half-life steps
    k = e & 63
    a = _KEEP_Q30[k]
    return (a - (a - _KEEP_Q30[k + 1]) * dt_ms // half_life_ms) >> (e >> 6)


class Line:
    # Volumes in nL; times in virtual ms (Clock.ms, never wrapping). The state is the
    # volume in the line just after the last stroke (or change of outflow) and its time:
    # what is left of it later is a function of the time since, worked out only when
    # something looks (the next stroke, a reading, LineView). So nothing runs per wait,
    # and the answer is the same however often anything looks. What was pumped and is no
    # longer stored has been delivered: pumped = delivered + stored, to the nanolitre.
    # Plain attributes only: on MicroPython a property anywhere in a class slows every
    # attribute store of its instances, and push() runs every stroke.
    def __init__(self):
        self.half_life_ms = OPEN_HALF_LIFE_MS  # 0: fully blocked, no outflow
        self.drain_ms = OPEN_HALF_LIFE_MS << 4  # all of it gone this long after a push
        self.ref_nl = 0  # in the compliance, above the CSF pressure, at...
        self.ref_ms = 0  # ...this time
        self.pumped_nl = 0  # into the line
        self.backflow_nl = 0  # refused by a full line: leaked back past the rollers

    def stored_at(self, now_ms):
        # the volume in the line at now_ms (not earlier than the last push)
        r = self.ref_nl
        if not r:
            return 0
        h = self.half_life_ms
        now_ms -= self.ref_ms
        if not h or now_ms <= 0:
            return r
        if now_ms >= self.drain_ms:
            return 0  # 16 half-lives: less than 1/65536 of it left
        return (r * keep_q30(now_ms, h) + (1 << 29)) >> 30

    def delivered_at(self, now_ms):
        return self.pumped_nl - self.stored_at(now_ms)

    def push(self, nl, at_ms):
        # A stroke lands at at_ms (not earlier than the last push); returns the volume
        # the line took, less than nl only when it is full. Head._stroke() writes out
        # the common case (the line empty since the last stroke) itself: keep the two
        # in step.
        r = self.ref_nl
        if r and at_ms - self.ref_ms < self.drain_ms:
            r = self.stored_at(at_ms)
        else:
            r = 0
        if nl > STORED_MAX_NL - r:
            self.backflow_nl += nl - STORED_MAX_NL + r
            nl = STORED_MAX_NL - r
        self.ref_nl = r + nl
        self.ref_ms = at_ms
        self.pumped_nl += nl
        return nl

    def set_half_life(self, now_ms, half_life_ms):
        # The catheter's resistance changes at now_ms (an occlusion starts or ends).
        self.ref_nl = self.stored_at(now_ms)
        self.ref_ms = now_ms
        self.half_life_ms = half_life_ms
        self.drain_ms = half_life_ms << 4 if half_life_ms else 1 << 60

    def restore(self, stored_nl, pumped_nl, backflow_nl, now_ms):
        # the line as saved before a restart of the simulator
        self.ref_nl = stored_nl
        self.ref_ms = now_ms
        self.pumped_nl = pumped_nl
        self.backflow_nl = backflow_nl


class LineView:
    # board.line: the Line's truth as of the board's clock, for tests, tools and anyone
    # who asks: stored_nl and delivered_nl as of now, and the Line's own attributes.
    # The sim's own parts hold the Line itself.
    def __init__(self, line, clock):
        self._line = line
        self._clock = clock

    def __getattr__(self, name):
        line = self._line
        if name == "stored_nl":
            return line.stored_at(self._clock.ms)
        if name == "delivered_nl":
            return line.delivered_at(self._clock.ms)
        return getattr(line, name)


class Csf:
    # The CSF pressure at the catheter tip: a resting level, a slow drift between random
    # points, and cough spikes. Generated lazily, each from its own stream, in time order.
    def __init__(self, seed):
        self._posture = stream(seed, STREAM_POSTURE)
        self._cough = stream(seed, STREAM_COUGH)
        self.rest_ubar = CSF_REST_MIN_UBAR + self._posture.below(CSF_REST_SPAN_UBAR + 1)
        self.k0_ms = 0  # the drift runs straight from (k0_ms, k0_ubar)...
        self.k0_ubar = self.rest_ubar
        self.k1_ms = 0  # ...to (k1_ms, k1_ubar)
        self.k1_ubar = self.rest_ubar
        self._next_point()
        self.cough_ms = 0  # the next (or current) cough: start, end, height
        self.cough_end_ms = 0
        self.cough_ubar = 0
        self._next_cough()

    def slow_ubar(self, now_ms):
        # the drift alone: the baseline an occlusion detector should follow
        while now_ms >= self.k1_ms:
            self._next_point()
        return self.k0_ubar + (self.k1_ubar - self.k0_ubar) * (now_ms - self.k0_ms) // (self.k1_ms - self.k0_ms)

    def ubar(self, now_ms):
        p = self.slow_ubar(now_ms)
        if now_ms >= self.cough_ms:
            while now_ms >= self.cough_end_ms:
                self._next_cough()
            if now_ms >= self.cough_ms:
                p += self.cough_ubar
        return p

    def _next_point(self):
        r = self._posture
        self.k0_ms = self.k1_ms
        self.k0_ubar = self.k1_ubar
        self.k1_ms += POSTURE_MIN_MS + r.below(POSTURE_SPAN_MS + 1)
        self.k1_ubar = self.rest_ubar + r.below(POSTURE_RANGE_UBAR + 1)

    def _next_cough(self):
        r = self._cough
        self.cough_ms = self.cough_end_ms + COUGH_GAP_MIN_MS + r.below(COUGH_GAP_SPAN_MS + 1)
        self.cough_end_ms = self.cough_ms + COUGH_MIN_MS + r.below(COUGH_SPAN_MS + 1)
        self.cough_ubar = COUGH_MIN_UBAR + r.below(COUGH_SPAN_UBAR + 1)


# Sensor fault modes (boards/sim/faults.py sets them); a noisy sensor only widens the noise.
OK = const(0)
STUCK = const(1)
RAIL_LOW = const(2)
RAIL_HIGH = const(3)


class PressureSensor:
    # HAL board.pressure: the gauge pressure in the line (CSF + stored volume / C) through
    # the sensor's calibration, the ADC's 12 bits and its noise.
    #
    # The firmware reads it every stroke, so read_raw() does its work in the sensor's own
    # units and calls nothing on the common path: the CSF drift is kept as a straight
    # line of readings (16.16 fixed point) that is worked out again only at a drift point
    # or a cough's start or end (next_ms), and the noise generator (xorshift32, as
    # boards/sim/rng.py) runs inline.
    def __init__(self, config, clock, line, csf, seed):
        self.clock = clock
        self.line = line
        self.csf = csf
        self.zero_raw = config.PRESSURE_ZERO_RAW
        self.raw_per_bar = config.PRESSURE_RAW_PER_BAR
        self.raw_per_nl_q16 = LINE_UBAR_PER_NL * self.raw_per_bar * 65536 // 1000000
        self.noise_x = stream(seed, STREAM_NOISE).state
        self.noise_lsb = NOISE_LSB
        self.mode = OK  # set by faults (call changed() after)
        self.stuck_raw = 0
        self.k0_ms = 0  # the reading without noise and line is raw0_q16 at k0_ms...
        self.raw0_q16 = 0
        self.slope_q16 = 0  # ...changing by this much a ms...
        self.next_ms = 0  # ...until this time (-1: a fault mode, every reading goes the slow way)

    def read_raw(self):
        now = self.clock.ms
        if now >= self.next_ms:
            self._catch_up(now)
            if self.mode:
                return self._faulty()
        # ideal_raw(), inline
        raw = (self.raw0_q16 + (now - self.k0_ms) * self.slope_q16) >> 16
        x = self.line
        if x.ref_nl and now - x.ref_ms < x.drain_ms:  # the line is not (yet) empty
            raw += x.stored_at(now) * self.raw_per_nl_q16 >> 16
        # a 16-bit value through the 12-bit ADC: nearest code, noise, clamp, rescale
        x = self.noise_x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.noise_x = x
        now = self.noise_lsb
        raw = (raw * 4095 + 32767) // 65535 + x % (now + now + 1) - now
        if raw < 0:
            raw = 0
        elif raw > 4095:
            raw = 4095
        return raw << 4 | raw >> 8

    def ideal_raw(self, now_ms):
        # the noise-free reading on the 16-bit scale (within a count of the exact
        # conversion of the pressure; not yet clamped to the scale)
        if now_ms >= self.next_ms:
            self._catch_up(now_ms)
        raw = (self.raw0_q16 + (now_ms - self.k0_ms) * self.slope_q16) >> 16
        return raw + (self.line.stored_at(now_ms) * self.raw_per_nl_q16 >> 16)

    def changed(self):
        # a fault mode was set or cleared: the next reading takes the slow way
        self.next_ms = -1

    def _raw_q16(self, ubar):
        return ubar * self.raw_per_bar * 65536 // 1000000

    def _catch_up(self, now_ms):
        c = self.csf
        c.ubar(now_ms)  # moves the drift and the coughs on to now
        r0 = self._raw_q16(c.k0_ubar)
        self.k0_ms = c.k0_ms
        self.slope_q16 = (self._raw_q16(c.k1_ubar) - r0) // (c.k1_ms - c.k0_ms)
        self.raw0_q16 = (self.zero_raw << 16) + r0
        nxt = c.k1_ms
        if c.cough_ms <= now_ms:  # in a cough until its end
            self.raw0_q16 += self._raw_q16(c.cough_ubar)
            if c.cough_end_ms < nxt:
                nxt = c.cough_end_ms
        elif c.cough_ms < nxt:
            nxt = c.cough_ms
        self.next_ms = -1 if self.mode else nxt

    def _faulty(self):
        if self.mode == STUCK:
            return self.stuck_raw
        code = self._noise_below(RAIL_LSB + 1)
        if self.mode == RAIL_HIGH:
            code = 4095 - code
        return code << 4 | code >> 8

    def _noise_below(self, n):
        x = self.noise_x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.noise_x = x
        return x % n
