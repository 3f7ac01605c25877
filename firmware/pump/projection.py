# When the reservoir will reach the low-reservoir level and the empty floor, in whole days
# from now, in the worst case: the schedule as programmed plus every patient bolus the
# program allows in each 24 h, taken as soon as allowed (so a refill planned on these
# dates is never late).
#
# Days are 24 h periods counted from now, not calendar days: "3 days" means the level is
# not reached within the next 72 h. So for a continuous program the worst case is never
# later than the reservoir divided by the daily volume at the programmed rate, whatever
# the hour it is computed at. Volumes in nL; each period's need is rounded up.
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
    # The worst-case nL the pump takes from the reservoir in each of the 7 periods of 24 h
    # that start now, on each weekday (the week repeats).
    def __init__(self, program, conc, weekday, ms, paused):
        pb = program.patient
        bolus_nl = _nl_for(pb.dose_ng * pb.max_per_24h, conc) if pb is not None else 0
        self.per_period = []
        for i in range(7):
            if paused:
                nl = program.keep_open_nl_per_day
            else:
                nl = _nl_for(program.schedule.integral_ng_ceil((weekday + i) % 7, ms, DAY_MS), conc)
            nl += bolus_nl
            self.per_period.append(nl if nl < _CAP_NL else _CAP_NL)

    def days_until(self, volume_nl, level_nl):
        # Whole 24 h periods from now that pass before the reservoir is at or below
        # level_nl: 0 if it is (or may be) within the next 24 h, -1 beyond HORIZON_DAYS.
        left = volume_nl - level_nl
        week = 0
        for nl in self.per_period:
            week += nl
            if week > _CAP_NL:
                week = _CAP_NL
        if left <= 0:
            return 0
        if week <= 0:
            return -1
        # whole weeks first, leaving 1..week nL for the period-by-period walk
        weeks = (left - 1) // week
        if weeks * 7 > HORIZON_DAYS:
            return -1
        days = weeks * 7
        left -= weeks * week
        for need in self.per_period:
            if left <= need:
                return days if days <= HORIZON_DAYS else -1
            left -= need
            days += 1
        return days if days <= HORIZON_DAYS else -1
