# The alarm system: one table says, for every alarm, its priority, what it does to
# delivery, what clears it and how it annunciates; one small state machine applies it.
#
# Theory of operation:
# - An alarm is raised when its condition is seen and is then active. Raising an active
#   alarm does nothing (no event, no new signal): conditions that persist or repeat do
#   not flood the log or the link.
# - It clears by its rule: CONDITION (the core says the condition is gone), ACK (the
#   condition is gone and someone acknowledged), REFILL (the reservoir was refilled),
#   LATCH (someone acknowledged after the condition had gone: a fault that keeps coming
#   back is looked at, not waved through while it lasts). Acknowledging an alarm whose
#   condition persists only marks it acknowledged (and a LATCH alarm not even that).
# - The highest active priority annunciates (HIGH, then MEDIUM, then LOW; within one
#   priority the older first); when it clears, the next one shows.
# - A silence stops the sound for a bounded time (SILENCE_MS_MAX). Any alarm raised
#   during a silence, and every alarm still active when it ends, sounds again.
# - An alarm that STOPs delivery keeps the pump stopped while it is active.

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

HIGH = const(3)
MEDIUM = const(2)
LOW = const(1)
PRIORITY_NAMES = ("none", "low", "medium", "high")

CONTINUE = const(0)
STOP = const(1)

CONDITION = const(0)
ACK = const(1)
REFILL = const(2)
LATCH = const(3)
CLEARS_NAMES = ("condition", "ack", "refill", "latch")

SILENCE_MS_MAX = const(900000)  # a patient may silence for up to 15 minutes

EMPTY = "reservoir_empty"
LOW_VOLUME = "reservoir_low"
LOW_DAYS = "reservoir_days"
OCCLUSION = "occlusion"
STALL = "motor_stall"
BATTERY_LOW = "battery_low"
END_OF_SERVICE = "end_of_service"
STORAGE = "storage_error"
SENSOR = "pressure_sensor"
CLOCK = "clock_not_set"
LIMIT = "safety_limit"
WATCHDOG = "watchdog_reset"
RESIDUAL = "refill_residual"
ROTOR = "rotor_sensor"

# code: (priority, delivery, clears on)
TABLE = {
    EMPTY: (HIGH, STOP, REFILL),  # below the floor: nothing left to give reliably
    OCCLUSION: (HIGH, STOP, CONDITION),  # resumes by itself once the line is open again
    STALL: (HIGH, STOP, ACK),  # a motor that failed twice needs a person to look
    END_OF_SERVICE: (HIGH, STOP, CONDITION),  # stop, and persist, before the supply fails
    STORAGE: (HIGH, CONTINUE, ACK),  # therapy goes on; what a power cut would lose is at risk
    LOW_VOLUME: (MEDIUM, CONTINUE, REFILL),
    LOW_DAYS: (MEDIUM, CONTINUE, REFILL),
    BATTERY_LOW: (MEDIUM, CONTINUE, CONDITION),
    SENSOR: (MEDIUM, CONTINUE, CONDITION),  # occlusion detection is blind meanwhile
    ROTOR: (MEDIUM, CONTINUE, ACK),  # rotor pulses missed often: delivery is no longer confirmed
    WATCHDOG: (MEDIUM, CONTINUE, ACK),
    RESIDUAL: (MEDIUM, CONTINUE, ACK),  # refill residual off by more than the tolerance
    CLOCK: (LOW, CONTINUE, CONDITION),
    LIMIT: (LOW, CONTINUE, ACK),  # a request refused, or strokes withheld, by a hard limit
}

# Every code in a fixed order: the state file stores an alarm as its index here (append
# new codes at the end; a dict's order differs between the runtimes).
CODES = (EMPTY, LOW_VOLUME, LOW_DAYS, OCCLUSION, STALL, BATTERY_LOW, END_OF_SERVICE, STORAGE, SENSOR, CLOCK, LIMIT,
         WATCHDOG, RESIDUAL, ROTOR)

# How each priority annunciates, on the board's 16-slot patterns of 125 ms (docs/hal.md):
# (LED pattern, tone pattern, tone every N cycles of 2 s). Encoded in the manner of
# IEC 60601-1-8: more pulses, sooner repeated and faster flashing for a higher priority.
# The standard's exact pulse and burst timings (its tables 3 and 4) are not reproduced
# here and have not been checked against its text.
ANNUNCIATION = {
    HIGH: (0x3333, 0x5555, 2),  # LED 2 Hz; 8 pulses every 4 s
    MEDIUM: (0x00FF, 0x0015, 4),  # LED 0.5 Hz; 3 pulses every 8 s
    LOW: (0xFFFF, 0x0001, 8),  # LED steady; 1 pulse every 16 s
}
QUIET = (0, 0, 1)


class Alarm:
    def __init__(self, code, order):
        self.code = code
        self.priority, self.delivery, self.clears = TABLE[code]
        self.order = order  # raise order: older annunciates first within a priority
        self.condition = True  # the raising condition is (still) present
        self.acked = False
        self.sounding = True  # not silenced


class Alarms:
    def __init__(self):
        self.active = []  # Alarm, in raise order
        self._order = 0
        self.silenced = False

    def get(self, code):
        for a in self.active:
            if a.code == code:
                return a
        return None

    def raise_(self, code):
        # True if the alarm is new (the caller says so on the link and in the log)
        a = self.get(code)
        if a is not None:
            a.condition = True
            return False
        self._order += 1
        a = Alarm(code, self._order)
        self.active.append(a)
        return True

    def gone(self, code):
        # The condition is no longer present. True if that cleared the alarm.
        a = self.get(code)
        if a is None:
            return False
        a.condition = False
        if a.clears == CONDITION or (a.clears == ACK and a.acked):
            self.active.remove(a)
            return True
        return False

    def ack(self):
        # Acknowledge every active alarm; returns the codes this cleared.
        cleared = []
        for a in list(self.active):
            if a.clears == LATCH and a.condition:
                continue  # too soon: the fault is still there
            a.acked = True
            if (a.clears == ACK or a.clears == LATCH) and not a.condition:
                self.active.remove(a)
                cleared.append(a.code)
        return cleared

    def refilled(self):
        # A refill clears what a refill clears; the caller re-raises whatever still holds.
        cleared = []
        for a in list(self.active):
            if a.clears == REFILL:
                self.active.remove(a)
                cleared.append(a.code)
        return cleared

    def stopping(self):
        # the highest-priority alarm that stops delivery, or None
        top = None
        for a in self.active:
            if a.delivery == STOP and (top is None or a.priority > top.priority):
                top = a
        return top

    def top(self):
        top = None
        for a in self.active:
            if top is None or a.priority > top.priority:
                top = a
        return top

    def annunciation(self):
        # (led, tone, tone_every) for the board: the highest priority shows; a silence
        # mutes the tone, not the light
        top = self.top()
        if top is None:
            return QUIET
        led, tone, every = ANNUNCIATION[top.priority]
        if self.silenced:
            tone = 0
        return led, tone, every

    def to_wire(self):
        return [[a.code, PRIORITY_NAMES[a.priority], a.acked, a.condition] for a in self.active]

    def write_record(self, out):
        # What survives a restart, into a pump.record.Out: each active alarm as [its index
        # in CODES, acknowledged, its rule (a latch stays a latch), condition present].
        out.raw(b"[")
        i = 0
        while i < len(self.active):
            a = self.active[i]
            if i:
                out.raw(b",")
            out.raw(b"[")
            out.int(CODES.index(a.code))
            out.raw(b",1," if a.acked else b",0,")
            out.int(a.clears)
            out.raw(b",1]" if a.condition else b",0]")
            i += 1
        out.raw(b"]")

    def restore(self, record):
        for item in record:
            if 0 <= item[0] < len(CODES):
                code = CODES[item[0]]
                self.raise_(code)
                a = self.get(code)
                a.acked = bool(item[1])
                if len(item) > 2:  # (older files: [code, acked])
                    a.clears = item[2]
                if len(item) > 3:
                    a.condition = bool(item[3])
