# The checks a therapy change must pass against the pump's hard limits before it is
# accepted. Each returns None, or (limit, reason) naming the limit and the numbers.
# Whatever these accept, the core's runtime guard still withholds any stroke that would
# put more than the 24 h limit into a rolling window: these checks make sure it never has to.
from pump.limits import BUCKET_MS, BUCKETS

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_DAY_MS = const(86400000)


def _ug(ng):
    # ng as a decimal ug string, exact: 1234567 -> "1234.567"
    s = "%d.%03d" % (ng // 1000, ng % 1000)
    s = s.rstrip("0")
    return s[:-1] if s.endswith(".") else s


def program_refusal(program, limits):
    sched = program.schedule
    top = sched.max_rate()
    if top > limits.max_rate_ng_per_day:
        return ("max_rate", "a step runs %s ug/day, above the maximum rate of %s ug/day"
                % (_ug(top), _ug(limits.max_rate_ng_per_day)))
    keep = program.keep_open_nl_per_day * program.conc_ug_per_ml // 1000
    if keep > limits.max_rate_ng_per_day:
        return ("max_rate", "the keep-open rate (while paused) runs %s ug/day, above the maximum rate of %s ug/day"
                % (_ug(keep), _ug(limits.max_rate_ng_per_day)))
    allowance = 0
    pb = program.patient
    if pb is not None:
        if pb.dose_ng > limits.max_bolus_ng:
            return ("max_bolus", "a patient bolus of %s ug is above the maximum bolus of %s ug"
                    % (_ug(pb.dose_ng), _ug(limits.max_bolus_ng)))
        allowance = pb.dose_ng * pb.max_per_24h
    window = sched.max_window_ng()
    if window + allowance > limits.max_24h_ng:
        return ("max_24h", "up to %s ug in 24 h (schedule %s ug + patient boluses %s ug), above the "
                "24 h maximum of %s ug" % (_ug(window + allowance), _ug(window), _ug(allowance),
                                            _ug(limits.max_24h_ng)))
    return None


def worst_24h_ng(window, schedules, weekday, ms):
    # The most drug any 24 h window ending within the next 24 h would hold: what was
    # commanded that still lies inside it, plus the basal programmed from now to its end
    # (per 5 minutes, the larger of `schedules`: the running one and any pending). The
    # future part is summed exactly (ng plus a remainder) and rounded up once per window,
    # so a schedule exactly at a limit passes here as it does in program_refusal.
    best = window.total_ng
    future_ng = 0
    future_rem = 0
    old = 0
    b = window.buckets
    oldest = (window.head + 1) % BUCKETS
    for j in range(1, BUCKETS):
        old += b[(oldest + j - 1) % BUCKETS]
        step_ng = 0
        step_rem = 0
        for sched in schedules:
            ng, rem = sched.integral(weekday, ms, BUCKET_MS)
            if ng > step_ng or (ng == step_ng and rem > step_rem):
                step_ng, step_rem = ng, rem
        future_ng += step_ng
        future_rem += step_rem
        if future_rem >= _DAY_MS:
            future_ng += 1
            future_rem -= _DAY_MS
        ms += BUCKET_MS
        if ms >= _DAY_MS:
            ms -= _DAY_MS
            weekday = (weekday + 1) % 7
        total = window.total_ng - old + future_ng + (1 if future_rem else 0)
        if total > best:
            best = total
    return best


def bolus_refusal(dose_ng, limits, window, schedules, weekday, ms, patient_allowance_ng):
    if dose_ng > limits.max_bolus_ng:
        return ("max_bolus", "%s ug is above the maximum bolus of %s ug" % (_ug(dose_ng), _ug(limits.max_bolus_ng)))
    worst = worst_24h_ng(window, schedules, weekday, ms)
    if worst + dose_ng + patient_allowance_ng > limits.max_24h_ng:
        return ("max_24h", "%s ug now would make up to %s ug in a 24 h window (recent and scheduled %s ug%s), "
                "above the 24 h maximum of %s ug" % (
                    _ug(dose_ng), _ug(worst + dose_ng + patient_allowance_ng), _ug(worst),
                    (", patient boluses still allowed %s ug" % _ug(patient_allowance_ng)) if patient_allowance_ng else "",
                    _ug(limits.max_24h_ng)))
    return None
