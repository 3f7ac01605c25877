# The Pico board's motor and rotor code on the real rp2 port, in service mode through the
# REPL, measured on the emulated chip's pins: the PIO's step pulses (count, width, rate)
# and the ULN2003's half-step phases, each turning the head model into rotor pulses that
# the pin IRQ counts; and the same stroke path run under micropython.heap_lock(), where
# any allocation raises.
import emukit
from emukit import STEPS_PER_STROKE

bench = emukit.bench  # the fixture

NS_PER_MS = 1000000
STEP_PIN = 2
ULN_PINS = (10, 11, 12, 13)

SETUP = """
import time, micropython
from boards.pico import config
from boards.pico.rotor import Rotor
rotor = Rotor(config, time)
"""

ULN_CONFIG = """
from boards.pico.uln2003 import HalfStep
class UlnConfig:
    ULN2003_PINS = (10, 11, 12, 13)
    STEP_RATE_HZ = 500
    DIR_FORWARD_LEVEL = 1
uln = HalfStep(UlnConfig)
"""


def pulses(edges):
    # [(rise ns, fall ns)] from a flat [ns, level, ns, level, ...] edge list
    pairs = list(zip(edges[0::2], edges[1::2]))
    out = []
    rise = None
    for ns, level in pairs:
        if level == 1:
            rise = ns
        elif rise is not None:
            out.append((rise, ns))
            rise = None
    return out


def test_the_pio_makes_64_pulses_a_stroke_of_1_25_ms_at_400_hz_and_the_rotor_irq_counts_it(bench):
    b = bench(service=True).start(keys=False)
    b.pico.control("watch", gpio=STEP_PIN)
    r = b.pico.repl()
    try:
        out = r.exec(SETUP + """
from boards.pico.stepdir import StepDir
s = StepDir(config)
s.enable(True); s.direction(True)
s.step(2 * config.STEPS_PER_STROKE)
while s.busy():
    time.sleep_ms(5)
s.enable(False)
print('made', s.steps_made, 'rotor', rotor.take())
""", timeout_s=60)
    finally:
        r.close()
    assert "made 128 rotor 2" in out, out
    w = b.world()
    assert w["steps"] == 2 * STEPS_PER_STROKE and w["strokes"] == 2 and w["pulses"] == 2
    p = pulses(b.pico.control("edges", gpio=STEP_PIN)["edges"])
    assert len(p) == 128
    widths = [f - r for r, f in p]
    periods = [b2[0] - b1[0] for b1, b2 in zip(p, p[1:])]
    # 16 PIO cycles high, 16 low at 400 x 32 Hz: 1.25 ms and 2.5 ms (docs/pico.md)
    assert all(abs(x - 1.25 * NS_PER_MS) < 1000 for x in widths), (min(widths), max(widths))
    assert all(abs(x - 2.5 * NS_PER_MS) < 1000 for x in periods), (min(periods), max(periods))


def test_the_uln2003_half_steps_in_order_at_500_hz_and_a_stroke_pulses_the_rotor(bench):
    b = bench(service=True, driver="uln2003").start(keys=False)
    for g in ULN_PINS:
        b.pico.control("watch", gpio=g)
    r = b.pico.repl()
    try:
        out = r.exec(SETUP + ULN_CONFIG + """
uln.enable(True); uln.direction(True)
uln.step(512)
while uln.busy():
    time.sleep_ms(20)
uln.enable(False)
print('rotor', rotor.take())
""", timeout_s=60)
    finally:
        r.close()
    assert "rotor 1" in out, out
    w = b.world()
    assert w["steps"] == 512 and w["steps_backward"] == 0 and w["strokes"] == 1 and w["pulses"] == 1
    edges = []
    for g in ULN_PINS:
        e = b.pico.control("edges", gpio=g)["edges"]
        edges += e[0::2]
    edges.sort()
    # enable(True) energises the first phase; then one coil changes per half-step, and
    # releasing the coils at the end switches off the last one or two
    steps = edges[1:513]
    intervals = [y - x for x, y in zip(steps, steps[1:])]
    mean_ns = (steps[-1] - steps[0]) / (len(steps) - 1)
    assert abs(mean_ns - 2 * NS_PER_MS) < 2000, mean_ns
    assert all(abs(x - 2 * NS_PER_MS) < 0.2 * NS_PER_MS for x in intervals), (min(intervals), max(intervals))


def test_the_rotor_irq_and_the_stroke_path_allocate_nothing_on_the_rp2_port(bench):
    b = bench(service=True).start(keys=False)
    r = b.pico.repl()
    try:
        out = r.exec(SETUP + ULN_CONFIG + """
from boards.pico.stepdir import StepDir
s = StepDir(config)
s.enable(True); s.direction(True)
uln.enable(True); uln.direction(True)
made = counted = 0  # the REPL's globals exist before the lock: a new one would grow the dict
micropython.heap_lock()
try:
    s.step(3 * config.STEPS_PER_STROKE)
    while s.busy():
        time.sleep_ms(5)
    made = s.steps_made
    counted = rotor.take()
    uln.step(2 * config.STEPS_PER_STROKE)
    while uln.busy():
        time.sleep_ms(5)
    counted += rotor.take()
finally:
    micropython.heap_unlock()
s.enable(False); uln.enable(False)
print('made', made, 'counted', counted)
""", timeout_s=90)
    finally:
        r.close()
    assert "made 192 counted 5" in out, out
    assert "MemoryError" not in out and "Uncaught" not in out, out
    w = b.world()
    assert w["strokes"] == 5 and w["pulses"] == 5
