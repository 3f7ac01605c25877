# The simulated supply (HAL board.battery): VSYS as the Pico measures it, through its 3:1
# divider and 12-bit ADC. On USB it holds steady; a battery-discharge fault
# (boards/sim/faults.py) runs it down in a straight line. Integers only.
from boards.sim.fluid import STREAM_BATTERY, stream

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# USB: 5 V less the Pico's Schottky diode on VBUS -> VSYS (Pico datasheet, power chain).
USB_VSYS_MV = const(4800)
# A single-cell LiPo straight on VSYS (assumption): 4.2 V full, its protection circuit
# cuts it at about 3.0 V. Real cells sag fast at first, sit near 3.7-3.8 V for most of
# their charge and fall steeply at the end; the straight line stands for the average
# slope, and puts each threshold at a time a test can compute.
LIPO_FULL_MV = const(4200)
LIPO_CUTOFF_MV = const(3000)
DISCHARGE_MV_PER_H = const(100)  # default: low (3.5 V) after 7 h, end (3.3 V) after 9 h
FULL_SCALE_MV = const(9900)  # 3 x 3.3 V: the divider times the ADC reference
NOISE_LSB = const(2)  # +-2 codes, 2.4 mV each: the reading moves by a few mV


class Battery:
    def __init__(self, clock, seed):
        self.clock = clock
        self._noise = stream(seed, STREAM_BATTERY)
        self.start_ms = -1  # -1: on USB; else a discharge started then...
        self.start_mv = LIPO_FULL_MV  # ...from this voltage...
        self.mv_per_h = DISCHARGE_MV_PER_H  # ...at this rate...
        self.floor_mv = LIPO_CUTOFF_MV  # ...down to this

    def discharge(self, now_ms, start_mv, mv_per_h, floor_mv):
        self.start_ms = now_ms
        self.start_mv = start_mv
        self.mv_per_h = mv_per_h
        self.floor_mv = floor_mv

    def on_usb(self):
        self.start_ms = -1

    def true_mv(self, now_ms):
        if self.start_ms < 0:
            return USB_VSYS_MV
        mv = self.start_mv - (now_ms - self.start_ms) * self.mv_per_h // 3600000
        return mv if mv > self.floor_mv else self.floor_mv

    def read_mv(self):
        # as boards/pico/sensors.py computes it from read_u16()
        code = (self.true_mv(self.clock.ms) * 4095 + FULL_SCALE_MV // 2) // FULL_SCALE_MV
        code += self._noise.below(NOISE_LSB + NOISE_LSB + 1) - NOISE_LSB
        if code < 0:
            code = 0
        elif code > 4095:
            code = 4095
        return (code << 4 | code >> 8) * FULL_SCALE_MV // 65535
