# HAL rotor sensor: a pin IRQ counts pulses from the pump head's rotor sensor. The
# handler runs in hard-IRQ context and allocates nothing (host_tests prove it under
# micropython.heap_lock()): no floats, no bound-method creation, only small-int updates
# of attributes that already exist.
from machine import Pin, disable_irq, enable_irq


class Rotor:
    def __init__(self, config, clock):
        self.count = 0  # pulses not yet taken; written by the IRQ, reset by take()
        self._last_us = 0  # time of the last counted edge
        self._debounce_us = config.ROTOR_DEBOUNCE_US
        self._ticks_us = clock.ticks_us  # bound once, outside the IRQ
        self._ticks_diff = clock.ticks_diff
        self._last_us = self._ticks_us() - self._debounce_us - 1
        self.handler = self._on_edge  # bound once: the IRQ calls this very object
        self._pin = Pin(config.ROTOR_PIN, Pin.IN, Pin.PULL_UP)
        self._pin.irq(handler=self.handler, trigger=Pin.IRQ_FALLING, hard=True)

    def _on_edge(self, pin):
        now = self._ticks_us()
        if self._ticks_diff(now, self._last_us) >= self._debounce_us:
            self._last_us = now
            self.count += 1

    def take(self):
        state = disable_irq()
        n = self.count
        self.count = 0
        enable_irq(state)
        return n
