# HAL annunciator: the LED and a PWM buzzer play 16-slot bit patterns (docs/hal.md):
# bit i on = slot i of a 2 s cycle of 125 ms slots is on. A new pattern starts at slot 0.
# The tone sounds in one cycle of every `tone_every` (its repeat interval), the LED in all.
from machine import PWM, Pin

_SLOTS = 16


class Annunciator:
    def __init__(self, config):
        self._led = Pin(config.LED_PIN, Pin.OUT, value=0)
        self._pwm = PWM(Pin(config.BUZZER_PIN))
        self._pwm.freq(config.BUZZER_HZ)
        self._pwm.duty_u16(0)
        self._duty_on = config.BUZZER_DUTY_U16
        self._slot_ms = config.ANNUNCIATOR_SLOT_MS
        self._cycle_ms = _SLOTS * config.ANNUNCIATOR_SLOT_MS
        self._mask_ms = (1 << 30) - 1  # board ticks wrap at 2**30
        self.led = 0
        self.tone = 0
        self.tone_every = 1
        self._cycle = 0  # cycles since the pattern started, modulo tone_every
        self._start_ms = -1  # tick of slot 0; -1: the next tick() starts the cycle
        self._led_on = False
        self._tone_on = False

    def set(self, led, tone, tone_every=1):
        led &= 0xFFFF
        tone &= 0xFFFF
        if tone_every < 1:
            tone_every = 1
        if led != self.led or tone != self.tone or tone_every != self.tone_every:
            self.led = led
            self.tone = tone
            self.tone_every = tone_every
            self._cycle = 0
            self._start_ms = -1

    def wake_in_ms(self, now_ms):
        # ms until the next slot boundary, where an output may change; -1 while nothing
        # shows and nothing will (both patterns off and both outputs off)
        if not (self.led or self.tone or self._led_on or self._tone_on):
            return -1
        if self._start_ms < 0:
            return 0
        elapsed = (now_ms - self._start_ms) & self._mask_ms
        return self._slot_ms - elapsed % self._slot_ms

    def tick(self, now_ms):
        if self._start_ms < 0:
            self._start_ms = now_ms
        elapsed = (now_ms - self._start_ms) & self._mask_ms
        if elapsed >= self._cycle_ms:
            # keep slot 0 of the current cycle as the origin, so elapsed stays small
            self._cycle = (self._cycle + elapsed // self._cycle_ms) % self.tone_every
            elapsed %= self._cycle_ms
            self._start_ms = (now_ms - elapsed) & self._mask_ms
        bit = 1 << (elapsed // self._slot_ms)
        led_on = bool(self.led & bit)
        tone_on = self._cycle == 0 and bool(self.tone & bit)
        if led_on != self._led_on:
            self._led_on = led_on
            self._led.value(1 if led_on else 0)
        if tone_on != self._tone_on:
            self._tone_on = tone_on
            self._pwm.duty_u16(self._duty_on if tone_on else 0)
