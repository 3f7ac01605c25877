# The pump's core: events in (time, rotor pulses, link bytes), actions out (strokes,
# frames, records to persist). Every therapy decision is made here, deterministically.
#
# Pump is assembled from three parts, each a module of its own:
#   pump.engine   time, stroke clocks, motor record, telemetry (the per-stroke paths)
#   pump.therapy  the operations that change therapy, with their checks
#   pump.persist  the status frame and the state file
# and pump.commands, the link's commands (checked, authenticated by pump.auth), is loaded
# at the first frame from the link.
# Engine comes first among the bases, so the per-stroke method lookups end there.
from pump.engine import Engine
from pump.persist import Persistence
from pump.therapy import TherapyOps

STATE_FILE = "state"
LOG_FILE = "log"


class PumpConfig:
    # Calibration and policy the shell derives from the board config. The ranges keep
    # every product the core forms (stroke x concentration, rates) below 2**28.
    RANGES = (
        ("stroke_nl", 10, 20000),
        ("stroke_ms", 1, 60000),
        ("reservoir_capacity_nl", 1000000, 100000000),
        ("max_nl_per_day", 100000, 100000000),
        ("status_period_ms", 100, 86400000),
        ("lease_nl", 0, 1000000),
        ("lease_ms", 60000, 86400000),
        ("pressure_zero_raw", 0, 65535),
        ("pressure_raw_per_bar", 1, 65535),
        ("battery_low_mv", 1000, 10000),
        ("battery_end_mv", 1000, 10000),
    )

    def __init__(self, stroke_nl, stroke_ms, reservoir_capacity_nl, max_nl_per_day,
                 status_period_ms=10000, lease_nl=100000, pressure_zero_raw=6554,
                 pressure_raw_per_bar=13107, battery_low_mv=3500, battery_end_mv=3300, lease_ms=900000):
        self.stroke_nl = stroke_nl
        self.stroke_ms = stroke_ms  # how long one stroke takes the motor
        self.reservoir_capacity_nl = reservoir_capacity_nl
        self.max_nl_per_day = max_nl_per_day
        self.status_period_ms = status_period_ms
        # The lease (pump.engine): each state written already counts what may be
        # commanded before the next write (lease_ms of delivery at the rate then, at
        # most lease_nl), so a power cut can only under-state what is left, by at most
        # that much, never over-state it, nor under-state the 24 h record.
        self.lease_nl = lease_nl
        self.lease_ms = lease_ms
        # The downstream pressure sensor's calibration (board config), and the supply
        # thresholds: low (warn) and end of service (stop while the motor can still be
        # driven and the state written). Defaults suit a single-cell LiPo on VSYS
        # (assumption: about 3.5 V is the last tenth of its charge; 3.3 V keeps the
        # Pico's buck-boost and the driver in their range).
        self.pressure_zero_raw = pressure_zero_raw
        self.pressure_raw_per_bar = pressure_raw_per_bar
        self.battery_low_mv = battery_low_mv
        self.battery_end_mv = battery_end_mv
        for name, lo, hi in self.RANGES:
            value = getattr(self, name)
            if type(value) is not int or not lo <= value <= hi:
                raise ValueError("%s=%r: outside the allowed range %d..%d" % (name, value, lo, hi))


class Pump(Engine, TherapyOps, Persistence):
    pass
