# HAL stepper for a ULN2003 board and a 28BYJ-48: four coil pins half-stepped from a
# machine.Timer callback at STEP_RATE_HZ. The callback allocates nothing.
#
# rp2 timer callbacks are soft: scheduled, they run between two bytecodes of the main
# program, never in the middle of one, and disable_irq() does not hold them off. So no
# lock: each counter has one writer. The main program writes _queued (steps asked for,
# ever) and _hold; the callback writes _made (steps made). While _hold is set the callback
# does nothing, which makes the main program's read-and-rebase of both counters atomic.
from machine import Pin, Timer

# Half-step sequence, bit i = coil pin i (IN1..IN4): A, AB, B, BC, C, CD, D, DA. Each step
# changes exactly one coil, so writing the four pins in turn never shows a wrong phase.
_PHASES = (0b0001, 0b0011, 0b0010, 0b0110, 0b0100, 0b1100, 0b1000, 0b1001)


class HalfStep:
    def __init__(self, config):
        self._pins = tuple(Pin(g, Pin.OUT, value=0) for g in config.ULN2003_PINS)
        self._rate_hz = config.STEP_RATE_HZ
        self._phase = 0
        self._delta = 1  # +1 forward, -1 backward (& 7 wraps both ways)
        self._forward_delta = 1 if config.DIR_FORWARD_LEVEL else -1
        self._on = False
        self._queued = 0
        self._made = 0
        self._hold = False
        self._running = False
        self._timer = Timer(-1)
        self._tick_cb = self._tick  # bound once: the timer must not allocate per call

    # ---- HAL --------------------------------------------------------------------------------

    def enable(self, on):
        # The ULN2003 has no enable input: energise the current phase, or release all coils.
        self._on = bool(on)
        self._write(_PHASES[self._phase] if on else 0)

    def direction(self, forward):
        self._delta = self._forward_delta if forward else -self._forward_delta

    def step(self, n):
        if n <= 0:
            return
        self._hold = True
        left = self._queued - self._made
        self._made = 0
        self._queued = left + n
        if not self._running:
            self._running = True
            self._timer.init(mode=Timer.PERIODIC, freq=self._rate_hz, callback=self._tick_cb)
        self._hold = False

    def busy(self):
        return self._made != self._queued

    def abort(self):
        self._hold = True
        left = self._queued - self._made
        self._queued = self._made
        self._hold = False
        return left

    # ---- the timer callback: no allocation ---------------------------------------------------

    def _tick(self, timer):
        if self._hold:
            return
        if self._made == self._queued:
            self._running = False
            timer.deinit()
            return
        if self._on:  # released coils let the steps go by, as a STEP/DIR driver with EN off
            phase = (self._phase + self._delta) & 7
            self._phase = phase
            self._write(_PHASES[phase])
        self._made += 1

    def _write(self, bits):
        p = self._pins
        p[0].value(bits & 1)
        p[1].value(bits >> 1 & 1)
        p[2].value(bits >> 2 & 1)
        p[3].value(bits >> 3 & 1)
