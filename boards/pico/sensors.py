# HAL pressure and battery: raw ADC readings, converted (battery only) with integer maths.
from machine import ADC


class Pressure:
    def __init__(self, config):
        self._adc = ADC(config.PRESSURE_ADC_PIN)

    def read_raw(self):
        # 0..65535; the core converts with PRESSURE_ZERO_RAW and PRESSURE_RAW_PER_BAR
        return self._adc.read_u16()


class Battery:
    def __init__(self, config):
        self._adc = ADC(config.VSYS_ADC_PIN)
        # mV per full-scale count, as a fraction: at most 65535 * 9900, below 2**30
        self._num_mv = config.VSYS_DIVIDER * config.ADC_VREF_MV
        self._den = config.ADC_FULL_SCALE_RAW

    def read_mv(self):
        return self._adc.read_u16() * self._num_mv // self._den
