# Device entry point of the real Pico (firmware/main.py calls main() on rp2): unless the
# service pin is held at boot, build the board and the core and run the pump for ever,
# with Ctrl-C disabled so a stray keystroke on the shared USB serial cannot stop therapy.
#
# Service mode: hold SERVICE_PIN (GP22) to GND while the Pico boots and main() returns at
# once, leaving the REPL to mpremote for deployment (docs/pico.md).
import time

import app
from boards.pico import config as default_config
from machine import Pin
from pump.core import Pump

try:
    from micropython import kbd_intr
except ImportError:  # CPython host tests: there is no keyboard interrupt to turn off
    def kbd_intr(chr: int) -> None:
        pass

_CTRL_C = 3
_SERVICE_READS = 3  # all must agree: a floating or bouncing pin must not skip therapy
_SERVICE_READ_GAP_MS = 5


def service_mode(config=default_config, clock=time):
    pin = Pin(config.SERVICE_PIN, Pin.IN, Pin.PULL_UP)
    for _ in range(_SERVICE_READS):
        clock.sleep_ms(_SERVICE_READ_GAP_MS)  # also lets the pull-up settle
        if pin.value() != config.SERVICE_ACTIVE_LEVEL:
            return False
    return True


def main(make_board=None, keep_going=None, config=default_config, clock=time):
    # make_board / keep_going / config / clock: host tests only; the device passes nothing.
    if service_mode(config, clock):
        print("service mode: pump not started, REPL free (release GP%d and reset to run)"
              % config.SERVICE_PIN)
        return None
    if make_board is None:
        from boards.pico import Board
        board = Board(config)
    else:
        board = make_board()
    pump = Pump(app.pump_config(board.config))
    a = app.App(board, pump)
    kbd_intr(-1)
    try:
        a.run(keep_going)
    finally:
        # Only reached if the loop ends (a bug raised): give the REPL its Ctrl-C back.
        # The watchdog, already running, reboots the Pico within WATCHDOG_MS.
        kbd_intr(_CTRL_C)
    return a
