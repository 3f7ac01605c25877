# The simulated stepper, peristaltic head and reservoir: steps become strokes, strokes
# move real volume and pulse the rotor sensor. This is the physical truth the firmware's
# accounting is checked against.


class Head:
    def __init__(self, config, clock):
        self.clock = clock
        self.steps_per_stroke = config.STEPS_PER_STROKE
        self.step_ms_x1000 = 1000000 // config.STEP_RATE_HZ  # us per step
        self.stroke_nl = config.STROKE_NL  # true volume per stroke (= calibration here)
        self.enabled = False
        self.forward = True
        self.steps_queued = 0  # steps not yet made
        self.steps_into_stroke = 0
        self.busy_until_us = 0  # virtual us when the queued steps finish
        self.next_stroke_us = -1  # when the next full stroke completes, -1 if none
        self.pulses = 0  # rotor pulses not yet taken
        self.reservoir_nl = 0  # true volume in the reservoir
        self.pumped_nl = 0  # true volume pushed into the catheter
        self.strokes_made = 0
        self.steps_lost = 0  # steps requested while the driver was disabled

    # -- HAL: stepper
    def enable(self, on):
        self.enabled = bool(on)

    def direction(self, forward):
        self.forward = bool(forward)

    def step(self, n):
        if not self.enabled:
            self.steps_lost += n
            return
        if self.steps_queued == 0:
            self.busy_until_us = self.clock.ms * 1000
            if not self.steps_into_stroke:
                # the common case, whole strokes on an idle head: the first completes
                # one stroke's worth of steps from now
                self.steps_queued = n
                self.busy_until_us += n * self.step_ms_x1000
                if n >= self.steps_per_stroke:
                    self.next_stroke_us = self.clock.ms * 1000 + self.steps_per_stroke * self.step_ms_x1000
                else:
                    self.next_stroke_us = -1
                return
        self.steps_queued += n
        self.busy_until_us += n * self.step_ms_x1000
        self._plan()

    # Virtual time only moves in Board.wait(), which advances the physics; the calls
    # below see the head as it stands.
    def busy(self):
        return self.steps_queued > 0

    def abort(self):
        left = self.steps_queued
        self.steps_queued = 0
        self.next_stroke_us = -1
        return left

    # -- HAL: rotor
    def take(self):
        n = self.pulses
        self.pulses = 0
        return n

    # -- physics
    def _plan(self):
        if self.steps_queued + self.steps_into_stroke >= self.steps_per_stroke:
            steps_left = self.steps_per_stroke - self.steps_into_stroke
            start_us = self.busy_until_us - self.steps_queued * self.step_ms_x1000
            self.next_stroke_us = start_us + steps_left * self.step_ms_x1000
        else:
            self.next_stroke_us = -1

    def next_event_ms(self):
        # virtual ms of the next stroke completion, or -1
        if self.next_stroke_us < 0:
            return -1
        return (self.next_stroke_us + 999) // 1000

    def advance(self, now_ms):
        now_us = now_ms * 1000
        while 0 <= self.next_stroke_us <= now_us:
            steps_left = self.steps_per_stroke - self.steps_into_stroke
            self.steps_queued -= steps_left
            self.steps_into_stroke = 0
            self._stroke()
            self._plan()
        if self.steps_queued and self.next_stroke_us < 0:
            # a partial stroke's worth of steps left: count the ones already made
            start_us = self.busy_until_us - self.steps_queued * self.step_ms_x1000
            done = (now_us - start_us) // self.step_ms_x1000
            if done > self.steps_queued:
                done = self.steps_queued
            if done > 0:
                self.steps_queued -= done
                self.steps_into_stroke += done

    def _stroke(self):
        self.strokes_made += 1
        moved = self.stroke_nl if self.reservoir_nl >= self.stroke_nl else self.reservoir_nl
        self.reservoir_nl -= moved
        self.pumped_nl += moved
        self.pulses += 1
