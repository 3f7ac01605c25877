# Host stand-in for MicroPython's `machine` on the RP2040, so boards/pico runs unchanged
# on CPython and on the MicroPython unix port. One virtual world (`world`) holds the pins,
# the ADC inputs, PWM outputs, the watchdog, timers and the clock; `rp2` fakes register
# their state machines here so they run as the virtual clock moves.
#
# On the unix port `machine` is an extensible built-in: a machine.py on sys.path is
# imported instead of it (the built-in stays reachable as `umachine`). Nothing of the
# built-in is re-exported: its mem32 would touch the host process's real memory.
#
# Only what the Pico board uses is modelled, and modelled strictly: arguments the RP2040
# port would refuse are refused here too.

PWRON_RESET = 1
WDT_RESET = 3
_TICKS_PERIOD = 1 << 30  # time.ticks_*() wrap here on the RP2040
_TICKS_MASK = _TICKS_PERIOD - 1
_SYS_HZ = 125000000
_WDT_MAX_MS = 8388
_LED_GPIO = 25  # Pin("LED") on a plain Pico


class Clock:
    # The board's clock (the `time` module on the device): virtual microseconds.
    def __init__(self, world):
        self._world = world

    def ticks_ms(self):
        return (self._world.now_us // 1000) & _TICKS_MASK

    def ticks_us(self):
        return self._world.now_us & _TICKS_MASK

    def ticks_add(self, t, delta):
        return (t + delta) & _TICKS_MASK

    def ticks_diff(self, a, b):
        d = (a - b) & _TICKS_MASK
        return d - _TICKS_PERIOD if d >= _TICKS_PERIOD // 2 else d

    def sleep_ms(self, ms):
        self._world.advance_us(ms * 1000)

    def sleep_us(self, us):
        self._world.advance_us(us)


class _PinState:
    def __init__(self, gpio):
        self.gpio = gpio
        self.mode = -1
        self.pull = -1
        self.level = 0
        self.rises = 0
        self.falls = 0
        self.writes = 0  # writes by the program (not by the outside world)
        self.driven = False  # the outside world sets this input: pulls do not move it
        self.handler = None
        self.trigger = 0
        self.hard = False
        self.pending = False  # an edge arrived while IRQs were disabled
        self.obj = None  # the Pin handed to the IRQ handler
        self.listeners = []  # test hooks: called with (gpio, level) on every change


class World:
    def __init__(self):
        self.clock = Clock(self)
        self.reset()

    def reset(self, start_ms=0):
        self.now_us = start_ms * 1000
        self.pins = {}
        # channels 0-3 = GP26-GP29, 4 = temperature sensor; defaults as on a bench: the
        # pressure sensor at 0 bar (0.5 V x 2/3), VSYS 4.8 V from USB (/3), 27 degC
        self.adc = [6619, 0, 0, 31775, 14022]
        self.pwm = {}
        self.timers = []
        self.machines = []  # rp2 fake state machines
        self.wdt = None
        self.reset_cause = PWRON_RESET
        self.mem = {}
        self.irq_enabled = True
        self.irq_disables = 0  # disable_irq() calls, so tests see critical sections
        self.on_disable_irq = None  # test hook, called inside the critical section
        self.trace = None  # a list to record (time_us, gpio, level), or None
        self.unique_id = b"\xe6\x61\x38\x52\x83\x4c\x2a\x2f"  # machine.unique_id()

    def pin(self, gpio):
        if gpio == "LED":
            gpio = _LED_GPIO
        if not isinstance(gpio, int) or not 0 <= gpio <= 29:
            raise ValueError("invalid pin")
        st = self.pins.get(gpio)
        if st is None:
            st = self.pins[gpio] = _PinState(gpio)
        return st

    def set_level(self, gpio, level, by_program):
        # Every pin change goes through here: edge counts, trace, listeners, IRQs.
        st = self.pin(gpio)
        level = 1 if level else 0
        if by_program:
            st.writes += 1
        if level == st.level:
            return
        st.level = level
        if level:
            st.rises += 1
        else:
            st.falls += 1
        if self.trace is not None:
            self.trace.append((self.now_us, st.gpio, level))
        for fn in st.listeners:
            fn(st.gpio, level)
        edge = Pin.IRQ_RISING if level else Pin.IRQ_FALLING
        if st.handler is not None and st.trigger & edge:
            if self.irq_enabled:
                st.handler(st.obj)
            else:
                st.pending = True

    def drive(self, gpio, level):
        # The outside world sets an input (a sensor, a button).
        self.pin(gpio).driven = True
        self.set_level(gpio, level, False)

    def pulse(self, gpio, count=1, period_us=10000):
        # `count` low pulses on a pulled-up input, period_us apart in virtual time.
        for _ in range(count):
            self.drive(gpio, 0)
            self.advance_us(period_us // 2)
            self.drive(gpio, 1)
            self.advance_us(period_us - period_us // 2)

    def advance_us(self, us):
        # Move virtual time, running state machines and firing timers on the way.
        end = self.now_us + us
        while True:
            due = end
            for t in self.timers:
                if t.next_us < due:
                    due = t.next_us
            step = due - self.now_us
            if step > 0:
                for sm in self.machines:
                    sm.run_us(step)
                self.now_us = due
            fired = False
            for t in list(self.timers):
                if t.next_us <= self.now_us:
                    t.fire()
                    fired = True
            if self.now_us >= end and not fired:
                break
        wdt = self.wdt
        if wdt is not None and self.now_us - wdt.fed_us > wdt.timeout_ms * 1000:
            wdt.expired = True

    def advance_ms(self, ms):
        self.advance_us(ms * 1000)


world = World()


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    ALT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8

    def __init__(self, id, mode=-1, pull=-1, value=None):
        st = world.pin(id)
        self._st = st
        self.id = st.gpio
        if mode != -1:
            st.mode = mode
        if pull != -1:
            st.pull = pull
            if mode == Pin.IN and not st.driven:
                st.level = 1 if pull == Pin.PULL_UP else 0
        if value is not None:
            world.set_level(st.gpio, value, True)

    def value(self, v=None):
        if v is None:
            return self._st.level
        world.set_level(self._st.gpio, v, True)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        world.set_level(self._st.gpio, 1, True)

    def off(self):
        world.set_level(self._st.gpio, 0, True)

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, hard=False):
        st = self._st
        st.handler = handler
        st.trigger = trigger
        st.hard = hard
        st.obj = self


class ADC:
    CORE_TEMP = 4

    def __init__(self, id):
        if isinstance(id, Pin):
            id = id.id
        if 26 <= id <= 29:
            id -= 26
        if not 0 <= id <= 4:
            raise ValueError("invalid ADC channel")
        self.channel = id

    def read_u16(self):
        return world.adc[self.channel]


class PWM:
    def __init__(self, pin, freq=None, duty_u16=None):
        self.gpio = pin.id
        self.freq_hz = 0
        self.duty = 0
        self.changes = 0  # duty changes, so a test sees a tone switched on and off
        world.pwm[self.gpio] = self
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def freq(self, hz=None):
        if hz is None:
            return self.freq_hz
        if not 8 <= hz <= _SYS_HZ:  # the RP2040 PWM divider range at 125 MHz
            raise ValueError("freq out of range")
        self.freq_hz = hz
        return None

    def duty_u16(self, duty=None):
        if duty is None:
            return self.duty
        if not 0 <= duty <= 65535:
            raise ValueError("duty out of range")
        if duty != self.duty:
            self.changes += 1
        self.duty = duty
        return None

    def deinit(self):
        self.duty = 0


class WDT:
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError("WDT(%d) doesn't exist" % id)
        if timeout > _WDT_MAX_MS:
            raise ValueError("timeout exceeds %d" % _WDT_MAX_MS)
        if world.wdt is not None:
            raise RuntimeError("fake: the watchdog was started twice")
        self.timeout_ms = timeout
        self.feeds = 0
        self.fed_us = world.now_us
        self.expired = False
        world.wdt = self

    def feed(self):
        self.feeds += 1
        self.fed_us = world.now_us


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, **kwargs):
        if id != -1:
            raise ValueError("Timer doesn't exist")  # rp2 has only the virtual timer
        self.period_us = 0
        self.mode = Timer.PERIODIC
        self.callback = None
        self.next_us = 0
        self.fired = 0
        if kwargs:
            self.init(**kwargs)

    def init(self, mode=PERIODIC, callback=None, period=-1, tick_hz=1000, freq=None):
        # rp2 accepts exactly these keywords (no `hard`: its timer callbacks are soft)
        if freq is not None:
            period_us = 1000000 // freq
        else:
            period_us = period * 1000000 // tick_hz
        self.period_us = period_us if period_us > 0 else 1
        self.mode = mode
        self.callback = callback
        self.next_us = world.now_us + self.period_us
        if self not in world.timers:
            world.timers.append(self)

    def deinit(self):
        if self in world.timers:
            world.timers.remove(self)

    def fire(self):
        if self.mode == Timer.PERIODIC:
            self.next_us += self.period_us
        else:
            self.deinit()
        self.fired += 1
        if self.callback is not None:
            self.callback(self)


class _Mem32:
    def __getitem__(self, addr):
        return world.mem.get(addr, 0)

    def __setitem__(self, addr, value):
        world.mem[addr] = value & 0xFFFFFFFF


mem32 = _Mem32()


def disable_irq():
    was = world.irq_enabled
    world.irq_enabled = False
    world.irq_disables += 1
    if world.on_disable_irq is not None:
        world.on_disable_irq()
    return was


def enable_irq(state):
    world.irq_enabled = bool(state)
    if world.irq_enabled:
        for st in world.pins.values():
            if st.pending:
                st.pending = False
                st.handler(st.obj)


def unique_id():
    # the RP2040 port returns the flash chip's 64-bit unique id
    return bytes(world.unique_id)


def reset_cause():
    return world.reset_cause


def freq():
    return _SYS_HZ


def idle():
    pass
