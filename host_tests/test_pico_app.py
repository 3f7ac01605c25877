# The shell (firmware/app.py) driving the real Pico board on fake hardware with a virtual
# clock: programmed strokes leave the PIO as step pulses, a model pump head turns every
# STEPS_PER_STROKE pulses into a rotor-sensor pulse, and the core confirms those strokes.
# Also Board.wait on a real StdioLink (a pipe), as on the device's USB serial.
import os
import threading
import time

import app
import machine
import pytest
from pump.core import Pump

from boards.fsstorage import FsStorage
from boards.pico import Board
from boards.pico import config as pico_config
from boards.stdiolink import StdioLink

W = machine.world
START_MS = (1 << 30) - 20000  # the run crosses the 2**30 tick wrap


class VirtualLink:
    def __init__(self):
        self.sent = []

    def read(self):
        return b""

    def write(self, data):
        self.sent.append(data)

    def wait(self, timeout_ms):
        W.advance_ms(timeout_ms)
        return False


class InboxLink(VirtualLink):
    # and bytes from the host, queued in `inbox`
    def __init__(self):
        super().__init__()
        self.inbox = b""

    def read(self):
        data = self.inbox
        self.inbox = b""
        return data


class Head:
    # The peristaltic head: STEP pulses turn it; each full stroke pulses the rotor sensor,
    # but only while the driver is enabled (EN low) and turning forward.
    def __init__(self, cfg):
        self.cfg = cfg
        self.steps = 0
        self.steps_idle = 0  # pulses the driver ignored (EN inactive)
        self.strokes = 0
        W.pin(cfg.STEP_PIN).listeners.append(self.on_step)

    def on_step(self, gpio, level):
        if not level:
            return
        if W.pin(self.cfg.EN_PIN).level != self.cfg.EN_ACTIVE_LEVEL:
            self.steps_idle += 1
            return
        assert W.pin(self.cfg.DIR_PIN).level == self.cfg.DIR_FORWARD_LEVEL
        self.steps += 1
        if self.steps % self.cfg.STEPS_PER_STROKE == 0:
            self.strokes += 1
            W.drive(self.cfg.ROTOR_PIN, 0)
            W.drive(self.cfg.ROTOR_PIN, 1)


def test_app_turns_strokes_into_step_pulses_and_rotor_pulses_into_confirmed_strokes(tmp_path):
    W.reset(START_MS)
    cfg = pico_config
    board = Board(cfg, link=VirtualLink(), storage=FsStorage(str(tmp_path)), clock=W.clock)
    head = Head(cfg)
    pump = Pump(app.pump_config(cfg))
    a = app.App(board, pump)
    a.start()
    # 4 mL/day (the Pico config's limit) at 50 ug/mL: a 250 nL stroke every 5.4 s
    reason = app.provision(a, {"drug": "baclofen", "conc_ug_per_ml": 50, "dose_ug_per_day": 200},
                           10000000)
    assert reason is None
    t_end_us = W.now_us + 60 * 1000000
    enables = 0
    was_enabled = False
    while W.now_us < t_end_us:
        board.wait(a.step())
        enabled = W.pin(cfg.EN_PIN).level == cfg.EN_ACTIVE_LEVEL
        enables += enabled and not was_enabled
        was_enabled = enabled
    while board.stepper.busy():  # let the last stroke finish
        board.wait(a.step())
    a.step()  # takes the last rotor pulse (an action pass)
    a.step()  # a pass without actions releases the driver
    assert 10 <= pump.basal.strokes <= 12, pump.basal.strokes  # 60 s / 5.4 s
    assert head.steps == pump.basal.strokes * cfg.STEPS_PER_STROKE
    assert head.steps_idle == 0, "step pulses while the driver was released"
    assert head.strokes == pump.strokes_confirmed == pump.basal.strokes
    assert pump.strokes_unconfirmed == 0 and pump.in_flight == 0
    assert pump.reservoir.delivered_nl == head.strokes * cfg.STROKE_NL
    assert enables >= 10, "the driver is released between strokes"
    assert W.pin(cfg.EN_PIN).level != cfg.EN_ACTIVE_LEVEL
    assert not W.wdt.expired and W.wdt.timeout_ms == app.WATCHDOG_MS
    assert board.link.sent, "status frames go out on the link"
    assert board.storage.read("state") is not None


def test_app_notices_a_stalled_head(tmp_path):
    # Strokes commanded with no rotor pulse back stay unconfirmed: the core is told the
    # truth from the sensor, not from the commands, and stops for a stalled motor.
    W.reset(START_MS)
    cfg = pico_config
    board = Board(cfg, link=VirtualLink(), storage=FsStorage(str(tmp_path)), clock=W.clock)
    pump = Pump(app.pump_config(cfg))
    a = app.App(board, pump)
    a.start()
    app.provision(a, {"drug": "baclofen", "conc_ug_per_ml": 50, "dose_ug_per_day": 200}, 10000000)
    t_end_us = W.now_us + 30 * 1000000
    while W.now_us < t_end_us:
        board.wait(a.step())
    # the stroke after the first unconfirmed one is its retry (nothing commanded again);
    # unconfirmed too, the stall alarm stops delivery
    assert W.pin(cfg.STEP_PIN).rises == pump.basal.strokes * cfg.STEPS_PER_STROKE > 0
    assert pump.basal.strokes == 2
    assert pump.strokes_confirmed == 0
    assert pump.state == "stopped" and pump.stop_reason == "motor_stall"


class RealClock:
    # time.ticks_*() for CPython: real milliseconds, wrapping like the RP2040's.
    def ticks_ms(self):
        return int(time.monotonic() * 1000) & ((1 << 30) - 1)

    def ticks_us(self):
        return int(time.monotonic() * 1000000) & ((1 << 30) - 1)

    def ticks_diff(self, a, b):
        return W.clock.ticks_diff(a, b)

    def sleep_ms(self, ms):
        time.sleep(ms / 1000)


@pytest.fixture
def pipe_board(tmp_path):
    W.reset()
    r, w = os.pipe()
    rf = os.fdopen(r, "rb", buffering=0)
    wf = os.fdopen(w, "wb", buffering=0)
    board = Board(pico_config, link=StdioLink(rf, wf), storage=FsStorage(str(tmp_path)),
                  clock=RealClock())
    yield board, wf
    rf.close()
    wf.close()


def test_wait_on_the_usb_serial_link_returns_when_bytes_arrive(pipe_board):
    board, wf = pipe_board
    timer = threading.Timer(0.1, wf.write, (b"\x00hello",))
    timer.start()
    t0 = time.monotonic()
    board.wait(400)
    waited = time.monotonic() - t0
    timer.join()
    assert 0.08 <= waited < 0.3, waited
    assert board.link.read() == b"\x00hello"


def test_wait_on_the_usb_serial_link_is_capped_at_wait_max(pipe_board):
    board, _ = pipe_board
    t0 = time.monotonic()
    board.wait(3600000)
    waited = time.monotonic() - t0
    assert pico_config.WAIT_MAX_MS / 1000 - 0.01 <= waited < pico_config.WAIT_MAX_MS / 1000 + 0.25


def test_the_pico_takes_signed_commands_under_keys_bound_to_its_unique_id(tmp_path):
    # The keys file names the RP2040's unique id (machine.unique_id(), as hex): the pump
    # answers hello with it and runs a command signed for it; keys for another id are
    # refused at boot.
    from pump import auth, wire
    W.reset(START_MS)
    cfg = pico_config
    link = InboxLink()
    storage = FsStorage(str(tmp_path))
    dev = bytes(W.unique_id).hex()
    keys = {auth.CLINICIAN: bytes(range(32)), auth.PATIENT: bytes(range(1, 33))}
    storage.write("keys", auth.keys_frame(dev, keys))
    board = Board(cfg, link=link, storage=storage, clock=W.clock)
    assert board.device_id == dev
    a = app.App(board, Pump(app.pump_config(cfg)))
    a.start()
    app.provision(a, {"drug": "baclofen", "conc_ug_per_ml": 50, "dose_ug_per_day": 200}, 10000000)
    args = {"minutes": 5}
    link.inbox = wire.encode(1, {"cmd": "hello"}) + wire.encode(2, {
        "cmd": "silence", "args": args,
        "auth": {"role": "patient", "ctr": 1, "mac": auth.mac_hex(keys["patient"], dev, "patient", 1, "silence", args)}})
    a.step()
    results = [f.body for f in wire.Reader().feed(b"".join(link.sent)) if f.body["t"] == "result"]
    assert results[0]["dev"] == dev and results[0]["roles"] == ["clinician", "patient"]
    assert results[1]["cmd"] == "silence" and results[1]["ok"], results
    # the same keys file on another Pico (another unique id) is not taken
    storage.write("keys", auth.keys_frame("0123456789abcdef", keys))
    W.reset(START_MS)  # a restart
    a2 = app.App(Board(cfg, link=VirtualLink(), storage=storage, clock=W.clock), Pump(app.pump_config(cfg)))
    a2.start()
    assert a2.pump.auth.keys == {} and "0123456789abcdef" in a2.pump.keys_problem
