# A week of flex dosing: which dose rate applies at a weekday and time of day, when it
# next changes, and how much drug the schedule programs over an interval, exactly.
#
# A schedule is a list of day profiles and a week naming one profile per weekday
# (Monday = 0). A profile is a list of steps [start_ms, rate_ng_per_day], sorted, each
# rate running until the next step's start; before a day's first step the previous
# day's last step still runs. Continuous dosing is one profile of one step.
from pump.exact import muldivmod

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

DAY_MS = const(86400000)


class Schedule:
    def __init__(self, profiles, week):
        self.profiles = profiles  # [[[start_ms, rate_ng_per_day], ...], ...]
        self.week = week  # 7 profile indices, Monday first

    def rate_at(self, weekday, ms):
        steps = self.profiles[self.week[weekday]]
        rate = -1
        for start, r in steps:
            if start > ms:
                break
            rate = r
        if rate < 0:
            rate = self.profiles[self.week[(weekday + 6) % 7]][-1][1]
        return rate

    def ms_to_change(self, weekday, ms):
        # ms from (weekday, ms) until the next step starts or the day ends
        for start, _ in self.profiles[self.week[weekday]]:
            if start > ms:
                return start - ms
        return DAY_MS - ms

    def integral(self, weekday, ms, duration_ms):
        # Drug programmed over [ms, ms + duration_ms) from that weekday: (ng, rem) with
        # total = ng + rem / DAY_MS exactly. Products never leave small ints.
        ng = 0
        rem = 0
        while duration_ms > 0:
            span = self.ms_to_change(weekday, ms)
            if span > duration_ms:
                span = duration_ms
            q, r = muldivmod(span, self.rate_at(weekday, ms), rem, DAY_MS)
            ng += q
            rem = r
            duration_ms -= span
            ms += span
            if ms >= DAY_MS:
                ms -= DAY_MS
                weekday = (weekday + 1) % 7
        return ng, rem

    def integral_ng_ceil(self, weekday, ms, duration_ms):
        ng, rem = self.integral(weekday, ms, duration_ms)
        return ng + 1 if rem else ng

    def max_window_ng(self, window_ms=DAY_MS):
        # The most drug any window of window_ms programs, over the whole week (ceil).
        # For a piecewise-constant rate the largest window starts at a step boundary or
        # ends at one, so those windows are the only ones to measure.
        starts = []
        for day in range(7):
            for start, _ in self.profiles[self.week[day]]:
                starts.append((day, start))
            starts.append((day, 0))
        best = 0
        for day, start in starts:
            ng = self.integral_ng_ceil(day, start, window_ms)
            if ng > best:
                best = ng
            # the window that ends at this boundary
            end_day = day
            end_ms = start - window_ms
            while end_ms < 0:
                end_ms += DAY_MS
                end_day = (end_day + 6) % 7
            ng = self.integral_ng_ceil(end_day, end_ms, window_ms)
            if ng > best:
                best = ng
        return best

    def max_rate(self):
        best = 0
        for steps in self.profiles:
            for _, rate in steps:
                if rate > best:
                    best = rate
        return best

    def scaled(self, num, den):
        # A copy with every rate x num/den, rounded to the nearest ng/day (titration).
        profiles = []
        for steps in self.profiles:
            out = []
            for start, rate in steps:
                q, r = muldivmod(rate, num, den // 2, den)
                out.append([start, q])
            profiles.append(out)
        return Schedule(profiles, list(self.week))

    def scaled_to_daily(self, profile, daily_ng):
        # That profile's steps scaled so one day of it (following itself) programs
        # daily_ng, each rounded to the nearest ng/day. Exact rational arithmetic: a
        # clinician command, never a per-stroke path, so its products may be long ints.
        steps = self.profiles[profile]
        total = 0  # ng/day x minutes: one day's drug is total / 1440 ng
        prev_start = 0
        prev_rate = steps[-1][1]
        for start, rate in steps:
            total += prev_rate * ((start - prev_start) // 60000)
            prev_start, prev_rate = start, rate
        total += prev_rate * ((DAY_MS - prev_start) // 60000)
        return [[start, (2 * rate * daily_ng * 1440 + total) // (2 * total)] for start, rate in steps]

    def to_wire(self, names):
        return {names[i]: [[s // 60000, r] for s, r in steps] for i, steps in enumerate(self.profiles)}
