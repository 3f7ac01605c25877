# The Pico's step-pulse PIO program, assembled from the very source the device runs (by
# the host stand-in for rp2.asm_pio) and run on rp2040-pio-emulator, an emulator written
# independently of our fakes: it makes exactly n pulses of 32 cycles, counts every step
# in Y in the same cycle as its rising edge, and reports n when the block ends. The same
# words on host_tests/fakes/rp2.py give the same edges, cycle for cycle.
from collections import deque

import pytest

import pioemu  # noqa: E402  (rp2040-pio-emulator, pinned in requirements.txt)

import machine  # noqa: E402  (the fakes; conftest puts them on the path)
import rp2  # noqa: E402

from boards.pico import config as pico_config  # noqa: E402
from boards.pico import stepdir  # noqa: E402

STEP = pico_config.STEP_PIN
MASK32 = 0xFFFFFFFF
PROGRAM = stepdir.step_program


def emulate(n_steps, max_cycles=100000):
    # Every (before, after) state pair of one block of n_steps, until its report is pushed.
    gen = pioemu.emulate(
        PROGRAM.words,
        stop_when=lambda opcode, state: state.receive_fifo or state.clock > max_cycles,
        initial_state=pioemu.State(y_register=MASK32, transmit_fifo=deque([n_steps - 1])),
        side_set_base=STEP, side_set_count=PROGRAM.sideset_count,
        wrap_target=PROGRAM.wrap_target, wrap_top=PROGRAM.wrap,
    )
    return list(gen)


def rises(pairs):
    bit = 1 << STEP
    return [before.clock for before, after in pairs
            if after.pin_values & bit and not before.pin_values & bit]


def test_encodings_match_the_micropython_documentation():
    assert rp2.asm_pio_encode("set(0, 1)", 0) == 57345  # the example in rp2's docs
    assert not PROGRAM.sideset_opt and PROGRAM.sideset_count == 1


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_emulated_block_makes_n_pulses_of_32_cycles_and_reports_n(n):
    pairs = emulate(n)
    edges = rises(pairs)
    assert len(edges) == n
    assert all(b - a == 32 for a, b in zip(edges, edges[1:]))
    final = pairs[-1][1]
    assert list(final.receive_fifo) == [n]
    assert final.pin_values & (1 << STEP) == 0


def test_y_counts_each_step_in_the_cycle_its_pulse_rises():
    # abort() reads ~Y as "steps made": it must equal the rising edges so far at every
    # instruction boundary, whatever the state machine was doing when stopped.
    made = 0
    bit = 1 << STEP
    for before, after in emulate(20):
        if after.pin_values & bit and not before.pin_values & bit:
            made += 1
        assert ~after.y_register & MASK32 == made


def test_the_fake_state_machine_agrees_with_the_emulator():
    machine.world.reset()
    seen = []
    sm = rp2.StateMachine(3)
    machine.world.pin(STEP).listeners.append(lambda gpio, level: level and seen.append(sm.cycles - 1))
    sm.init(PROGRAM, freq=pico_config.STEP_RATE_HZ * 32, sideset_base=machine.Pin(STEP))
    sm.exec("mov(y, invert(null))")
    sm.put(9)
    sm.active(1)
    sm.run_cycles(2000)
    assert seen == rises(emulate(10))
    assert sm.get() == 10
