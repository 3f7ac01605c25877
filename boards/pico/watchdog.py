# HAL watchdog: the RP2040's hardware watchdog through machine.WDT. Once started it cannot
# be stopped, so it is started by the shell, after the board is built.
import machine


class Watchdog:
    def __init__(self, config):
        self._max_ms = config.WATCHDOG_MAX_MS
        self._wdt = None
        # Decided once at boot. reset_cause() says WDT_RESET after any reboot that went
        # through the watchdog, and machine.reset(), mpremote and picotool reboot that way;
        # only a timeout of a watchdog that was started leaves the enable magic behind.
        self._caused = (machine.reset_cause() == machine.WDT_RESET
                        and machine.mem32[config.WATCHDOG_SCRATCH4_ADDR]
                        == config.WATCHDOG_ENABLE_MAGIC)

    def start(self, timeout_ms):
        if not 0 < timeout_ms <= self._max_ms:
            raise ValueError("watchdog timeout_ms out of range")
        self._wdt = machine.WDT(timeout=timeout_ms)

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def caused_reset(self):
        return self._caused
