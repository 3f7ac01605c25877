# The simulated Pico's calibration: a precision micro peristaltic head on a STEP/DIR driver.
# Values are stated assumptions for the model, chosen to sit inside the range of real
# intrathecal flow (0.01-2 mL/day) with fine enough strokes: 250 nL is 1/600 of a
# 0.15 mL/day baclofen dose.
STROKE_NL = 250
STEPS_PER_STROKE = 64
STEP_RATE_HZ = 400  # so one stroke takes 160 ms
RESERVOIR_CAPACITY_NL = 40000000  # 40 mL, the larger common implantable reservoir
MAX_NL_PER_DAY = 30000000  # 30 mL/day: far above any maintenance dose, bounds boluses
PRESSURE_ZERO_RAW = 6554  # a 0.5-4.5 V ratiometric sensor behind a divider: 10% of span at 0
PRESSURE_RAW_PER_BAR = 13107  # 0-4 bar over 10%-90% of the ADC span
STATUS_PERIOD_MS = 10000
WAIT_MAX_MS = 3600000  # the virtual clock may jump an hour when nothing is due
# The first tick: 30 s before the 2**30 wrap, so every run crosses a wrap at once.
START_TICKS = (1 << 30) - 30000
# Supply thresholds: the sim's VSYS starts at USB's ~4.8 V; a battery-discharge fault
# runs it down (docs/simulator.md). Single-cell LiPo figures, as the Pico's.
BATTERY_LOW_MV = 3500
BATTERY_END_MV = 3300
