# When the reservoir will reach the low-reservoir level and the empty floor, in whole days
# from now, in the worst case: the schedule as programmed plus every patient bolus the
# program allows, taken as soon as allowed (so a refill planned on these dates is never
# late). Volumes in nL; a day's need is rounded up.
from pump.exact import muldivmod

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

DAY_MS = const(86400000)
HORIZON_DAYS = const(999)  # beyond this the projection says "more than"
_CAP_NL = const(268435455)  # 2**28 - 1: need figures saturate here, in small ints


def _nl_for(ng, conc):
    # ceil(ng * 1000 / conc) nL, saturated
    if ng >= _CAP_NL // 1000 * conc:
        return _CAP_NL
    q, _ = muldivmod(ng, 1000, conc - 1, conc)
    return q


class Need:
    # The worst-case nL the pump takes from the reservoir: the rest of today, and each
    # weekday after.
    def __init__(self, program, conc, weekday, ms, paused):
        pb = program.patient
        bolus_ng = pb.dose_ng * pb.max_per_24h if pb is not None else 0
        self.per_weekday = []
        if paused:
            keep = program.keep_open_nl_per_day
            for _ in range(7):
                self.per_weekday.append(keep + _nl_for(bolus_ng, conc))
            today, _ = muldivmod(keep, DAY_MS - ms, DAY_MS - 1, DAY_MS)
        else:
            sched = program.schedule
            for wd in range(7):
                self.per_weekday.append(_nl_for(sched.integral_ng_ceil(wd, 0, DAY_MS) + bolus_ng, conc))
            today = _nl_for(sched.integral_ng_ceil(weekday, ms, DAY_MS - ms), conc)
        self.today = today + _nl_for(bolus_ng, conc)
        self.weekday = weekday

    def days_until(self, volume_nl, level_nl):
        # Whole days from now until the reservoir is at or below level_nl: 0 if it is (or
        # will be) today, -1 beyond HORIZON_DAYS.
        left = volume_nl - level_nl
        if left <= self.today:
            return 0
        left -= self.today
        week = 0
        for nl in self.per_weekday:
            week += nl
            if week > _CAP_NL:
                week = _CAP_NL
        if week <= 0:
            return -1
        # whole weeks first, leaving 1..week nL for the day-by-day walk
        weeks = (left - 1) // week
        if weeks * 7 > HORIZON_DAYS:
            return -1
        days = weeks * 7
        left -= weeks * week
        wd = (self.weekday + 1) % 7
        while True:
            days += 1
            need = self.per_weekday[wd]
            if left <= need:
                return days if days <= HORIZON_DAYS else -1
            left -= need
            wd = (wd + 1) % 7
