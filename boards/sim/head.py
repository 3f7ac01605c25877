# The simulated stepper, peristaltic head and reservoir: steps become strokes, strokes
# move real volume into the downstream line (boards/sim/fluid.py) and pulse the rotor
# sensor. This is the physical truth the firmware's accounting is checked against.
# Faults (boards/sim/faults.py) can stall the rotor or hide its pulses.
from boards.sim.fluid import STORED_MAX_NL, Line
from boards.sim.rng import Rng


class RotorFaults:
    # What faults do to the rotor, and what they cost. Kept apart from Head: every stroke
    # looks up a dozen of the head's attributes, and on MicroPython a fuller attribute
    # table makes each lookup slower.
    def __init__(self, rng):
        self.stalled = False  # the driver steps, the rotor does not turn
        self.miss_per_million = 0  # the rotor sensor drops each pulse with this chance
        self.rng = rng
        self.strokes_stalled = 0  # strokes' worth of steps the stalled rotor did not follow
        self.pulses_missed = 0


class Head:
    def __init__(self, config, clock, line=None, pulse_rng=None):
        self.clock = clock
        self.line = line or Line()  # downstream: the tubing and catheter
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
        self.impaired = False  # a rotor fault is active: strokes take the slow path
        self.rotor_faults = RotorFaults(pulse_rng or Rng(1))

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
        # One stroke's worth of steps is done, at next_stroke_us. Volume that a full line
        # refuses leaks back past the rollers: it stays in the reservoir.
        if self.impaired:
            return self._impaired_stroke()
        self.strokes_made += 1
        moved = self.stroke_nl if self.reservoir_nl >= self.stroke_nl else self.reservoir_nl
        # Into the line: Line.push(), with its common case (an open line, empty since the
        # last stroke) written out here, because a call per stroke costs the simulator
        # about 1 % of its speed.
        line = self.line
        t = (self.next_stroke_us + 999) // 1000
        if line.ref_nl and t - line.ref_ms < line.drain_ms or moved > STORED_MAX_NL:
            moved = line.push(moved, t)
        else:
            line.ref_nl = moved
            line.ref_ms = t
            line.pumped_nl += moved
        self.reservoir_nl -= moved
        self.pumped_nl += moved
        self.pulses += 1

    def _impaired_stroke(self):
        # _stroke under a fault: kept off the fault-free path, which runs every stroke
        f = self.rotor_faults
        if f.stalled:
            f.strokes_stalled += 1  # steps went out; the rotor did not follow
            return
        self.strokes_made += 1
        moved = self.stroke_nl if self.reservoir_nl >= self.stroke_nl else self.reservoir_nl
        moved = self.line.push(moved, (self.next_stroke_us + 999) // 1000)
        self.reservoir_nl -= moved
        self.pumped_nl += moved
        if f.rng.chance(f.miss_per_million):
            f.pulses_missed += 1
        else:
            self.pulses += 1

    def set_faults(self, stalled, miss_per_million):
        f = self.rotor_faults
        f.stalled = stalled
        f.miss_per_million = miss_per_million
        self.impaired = stalled or miss_per_million > 0

    def reset(self):
        # a watchdog reset: the step generator stops, the driver is released, the pulse
        # counter (RAM) is lost
        self.abort()
        self.enabled = False
        self.pulses = 0
