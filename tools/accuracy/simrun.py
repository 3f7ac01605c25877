"""The simulated Pico on a bench: the real firmware (shell and core, in this process on
CPython) drives the simulated head, and what leaves the catheter tip (boards/sim/fluid.py,
`board.line.delivered_nl`, exact nanolitres) is sampled at a fixed interval: the water a
balance would weigh. Optionally the pump's status frames are kept too, as `console watch
--json` would have written them, so the pump's own account can be analysed beside it.

Two things a bench meets are modelled here, outside the simulated board:
- a head whose true stroke differs from its calibration (`true_stroke_nl`: the
  simulated head moves that much per stroke while the firmware counts STROKE_NL);
- an outlet not primed (`unprimed_nl`): the first nanolitres fill the tubing to the
  container and never reach the balance, so delivery starts late.
"""
from __future__ import annotations

import os
import sys
import tempfile
from typing import Any, NamedTuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "firmware"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

DAY_MS = 86400000
FILL_NL = 40000000  # 40 mL: the simulated reservoir's capacity
CLOCK = [8766, 0]  # 2024-01-01 00:00, a Monday (days since 2000-01-01): no clock alarm
STATUS_MS = 10000  # a Pico's status period (boards/pico/config.py), for the pump's log


class SimRun(NamedTuple):
    times_s: list[float]
    tip_nl: list[int]  # delivered at the catheter tip by then, exact
    stroke_nl: int  # the firmware's calibration
    true_stroke_nl: int  # what the simulated head moves
    statuses: list[dict[str, Any]]  # frames the pump sent (with keep_frames), oldest first


class _Recorder:
    # the simulated Pico's serial link, read by nobody but this: frames sent are decoded
    def __init__(self, keep: bool) -> None:
        from pump import wire
        self.reader = wire.Reader() if keep else None
        self.bodies: list[dict[str, Any]] = []

    def read(self) -> bytes:
        return b""

    def wait(self, timeout_ms: int) -> bool:
        return False

    def write(self, data: bytes) -> None:
        if self.reader is not None:
            self.bodies += [f.body for f in self.reader.feed(data)]


def run(conc_ug_per_ml: int, dose_ug_per_day: int, duration_s: int, every_s: int = 30, seed: int = 1,
        true_stroke_nl: int | None = None, keep_frames: bool = False, drug: str = "baclofen") -> SimRun:
    """The firmware programmed at conc/dose from time 0, sampled every `every_s` for
    `duration_s`. keep_frames: the pump's frames too (status every 10 s, as a Pico)."""
    import app
    from boards.sim import Board
    from pump.core import Pump

    link = _Recorder(keep_frames)
    with tempfile.TemporaryDirectory() as flash:
        board = Board(flash, link, seed=seed)
        stroke_nl = board.config.STROKE_NL
        if true_stroke_nl is not None:
            board.head.stroke_nl = true_stroke_nl
        # without a log to keep, one status a day: the loop then wakes for strokes and
        # samples alone
        a = app.App(board, Pump(app.pump_config(board.config, STATUS_MS if keep_frames else DAY_MS)))
        board.head.reservoir_nl = FILL_NL
        a.start()
        program = {"drug": drug, "conc_ug_per_ml": conc_ug_per_ml, "dose_ug_per_day": dose_ug_per_day}
        reason = app.provision(a, program, FILL_NL, clock=CLOCK)
        if reason is not None:
            raise ValueError("the simulated pump refused the program: %s" % reason)
        clock = board.clock
        line = board.line
        step = a.step
        wait = board.wait
        times: list[float] = [0.0]
        tip: list[int] = [line.delivered_nl]
        every_ms = every_s * 1000
        for k in range(1, duration_s // every_s + 1):
            due = k * every_ms
            while clock.ms < due:
                w = step()
                if clock.ms + w > due:
                    w = due - clock.ms
                wait(w)
            times.append(float(k * every_s))
            tip.append(line.delivered_nl)
        step()  # frames due at the last instant
    statuses = [b for b in link.bodies if b.get("t") in ("status", "event")]
    return SimRun(times, tip, stroke_nl, board.head.stroke_nl, statuses)
