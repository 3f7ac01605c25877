# HAL stepper for a STEP/DIR/EN driver (A4988, DRV8825, TMC2209): a PIO state machine makes
# the step pulses at an exact rate while the Python loop sleeps, counts the steps it made,
# and reports each finished block of steps through its RX FIFO.
#
# Theory of operation:
# - Python puts one word per block of n >= 1 steps (n - 1, see below). The PIO program
#   pulls it into X and makes n steps of exactly _CYCLES_PER_STEP cycles each.
# - Y counts down once per step in the same instruction that raises STEP, so "steps made"
#   is ~Y at every instant; abort() reads it exactly, whatever the PIO was doing.
# - After a block the program pushes ~Y: one RX word per finished block. busy() counts
#   them. At most _BLOCKS_MAX blocks are outstanding (put but not reported), so the TX FIFO
#   never blocks put() and the RX FIFO never drops a report; steps asked for beyond that
#   wait in a Python backlog until a block finishes.
import rp2
from machine import Pin

_CYCLES_PER_STEP = 32  # 16 cycles STEP high, 16 low (the delays in step_program)
_BLOCKS_MAX = 4  # the RX FIFO depth
_BLOCK_STEPS_MAX = 1 << 20  # one PIO word never asks for more than this
_REBASE_STEPS = 1 << 28  # restart the step count when idle past this: small ints only

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rp2.asm_pio import *  # noqa: F401,F403 (the PIO DSL names, for the type checker)


@rp2.asm_pio(sideset_init=rp2.PIO.OUT_LOW)
def step_program():
    # side-set pin = STEP. Every instruction side-sets, so the bit is never optional and
    # leaves 4 bits of delay (max 15).
    pull(block).side(0)  # wait for a block: n - 1
    mov(x, osr).side(0)
    label("step")
    jmp(y_dec, "high").side(1)[15]  # STEP rises; the same instruction counts the step
    label("high")
    jmp(x_dec, "step").side(0)[15]  # STEP falls; more steps in this block?
    mov(isr, invert(y)).side(0)  # block done: report the steps made so far
    push(noblock).side(0)


class StepDir:
    def __init__(self, config):
        self._en = Pin(config.EN_PIN, Pin.OUT, value=1 - config.EN_ACTIVE_LEVEL)
        self._dir = Pin(config.DIR_PIN, Pin.OUT, value=config.DIR_FORWARD_LEVEL)
        self._step_pin = Pin(config.STEP_PIN, Pin.OUT, value=0)
        self._en_on = config.EN_ACTIVE_LEVEL
        self._forward_level = config.DIR_FORWARD_LEVEL
        self._sm_id = config.PIO_SM_ID
        self._freq_hz = config.STEP_RATE_HZ * _CYCLES_PER_STEP
        self.rebase_steps = _REBASE_STEPS
        self._sm = rp2.StateMachine(self._sm_id)
        self._start()

    def _start(self):
        # (Re)initialise: init() clears both FIFOs and restarts the program at its top.
        sm = self._sm
        sm.init(step_program, freq=self._freq_hz, sideset_base=self._step_pin)
        sm.exec("mov(y, invert(null))")  # ~Y = 0 steps made
        sm.active(1)
        self._steps_put = 0  # steps handed to the PIO since the last (re)start
        self._blocks_out = 0  # blocks put and not yet reported finished
        self._backlog = 0  # steps asked for but not yet put
        self.steps_made = 0  # as last reported by the PIO

    # ---- HAL --------------------------------------------------------------------------------

    def enable(self, on):
        self._en.value(self._en_on if on else 1 - self._en_on)

    def direction(self, forward):
        self._dir.value(self._forward_level if forward else 1 - self._forward_level)

    def step(self, n):
        if n <= 0:
            return  # a zero word would make the PIO step 2**32 times
        self._backlog += n
        self._pump()

    def busy(self):
        self._pump()
        if not self._blocks_out and not self._backlog and self._steps_put >= self.rebase_steps:
            self._rebase()
        return self._blocks_out > 0 or self._backlog > 0

    def abort(self):
        # Stop at once; the steps not made are the ones put and not counted, plus backlog.
        sm = self._sm
        sm.active(0)
        while sm.rx_fifo():
            sm.get()
        sm.exec("mov(isr, invert(y))")
        sm.exec("push(noblock)")
        made = sm.get()
        left = self._steps_put - made + self._backlog
        self._start()  # also drops the words still queued and drives STEP low
        return left

    # ---- inside -----------------------------------------------------------------------------

    def _pump(self):
        # Collect finished-block reports, then put as much backlog as the FIFOs allow.
        sm = self._sm
        while sm.rx_fifo():
            self.steps_made = sm.get()
            self._blocks_out -= 1
        while self._backlog and self._blocks_out < _BLOCKS_MAX:
            n = self._backlog if self._backlog < _BLOCK_STEPS_MAX else _BLOCK_STEPS_MAX
            sm.put(n - 1)
            self._backlog -= n
            self._steps_put += n
            self._blocks_out += 1

    def _rebase(self):
        # Idle, every step reported: restart the count at 0 so it stays a small int.
        sm = self._sm
        sm.active(0)
        sm.exec("mov(y, invert(null))")
        sm.active(1)
        self._steps_put = 0
        self.steps_made = 0
