"""The flow-accuracy figures of IEC 60601-2-24 from a record of delivered volume.

Theory of operation. Every input (a balance log, the pump's own log, the simulated head)
becomes one thing first: the cumulative volume delivered since the start of the
infusion, V(t), sampled every 0.5 min (the standard's sample interval). Everything
below is then a difference of two samples:

- start-up curve: the flow in each sample interval, Q_i = (V_i - V_(i-1)) / 0.5 min,
  over the first 2 h;
- trumpet curve: for each observation window of P minutes, the mean flow
  (V(s+P) - V(s)) / P for every window start s in the second hour (60 to 120 min - P,
  sliding by one sample), as a percentage deviation from the set rate; its largest
  (Ep(max)) and smallest (Ep(min));
- overall mean error: the same deviation over the whole second hour;
- beyond the standard, for rates of microlitres an hour: windows of 1, 6 and 24 h
  sliding over everything after the first hour of a record of several days.

A window's mean flow is then exactly what a balance (or the pump's count) saw over it,
never an average of averages, and each figure costs one subtraction. These are analyses
of measurements: floats. The set rate arrives as an exact fraction (the pump's program
is integers) and is turned into a float once, here.
"""
from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple, Sequence

SAMPLE_S = 30  # the standard's sample interval: 0.5 min
SAMPLES_PER_H = 3600 // SAMPLE_S
STARTUP_H = 2  # the start-up curve covers the first 2 h...
ANALYSIS_FROM_H = 1  # ...and the trumpet curve its second hour
ANALYSIS_TO_H = 2
WINDOWS_MIN = (2, 5, 11, 19, 31)  # the standard's observation windows
LONG_WINDOWS_H = (1, 6, 24)  # this pump's own, beyond the standard (docs/bench.md)
CLAUSE = "IEC 60601-2-24:2012, 201.12.1"


class AccuracyError(ValueError):
    """Input that cannot give the figures: says what is wrong and where."""


class Window(NamedTuple):
    minutes: int  # the observation window, P
    ep_max_pct: float  # the largest deviation of a window's mean flow from the set rate
    ep_min_pct: float  # the smallest (most negative)
    windows: int  # how many windows slid over the period
    stroke_pct: float | None  # one stroke over this window, in % of the set volume


class Figures(NamedTuple):
    rate_ul_per_h: float
    samples: int  # 0.5-min intervals in the record after the start
    startup: list[tuple[float, float]]  # (minutes at the interval's end, flow uL/h)
    trumpet: list[Window]  # the standard's windows, over the second hour
    mean_error_pct: float  # the second hour's overall mean error
    startup_delay_min: float | None  # how far the first hour trails the second hour's flow
    long: list[Window]  # 1, 6, 24 h windows that fit, over hour 1 to the end (records over 2 h)
    long_missing_h: list[int]  # long windows the record is too short for
    long_mean_error_pct: float | None  # hour 1 to the end of the record
    long_span_h: float  # the span the long windows slid over


def grid(times_s: Sequence[float], volumes_ul: Sequence[float], start_s: float,
         max_gap_s: float, hold: bool = False, what: str = "the record") -> list[float]:
    """V at start_s + i x 0.5 min, i = 0.. while the record lasts, relative to V at start.

    Readings (times increasing) are interpolated linearly between the two around each
    sample time; `hold` takes the last reading at or before it instead (a count, such as
    the pump's, holds its value between reports). A sample time whose readings are more
    than max_gap_s apart (or, with hold, whose last reading is older) is an error: a
    gap in the record is not filled in."""
    n = len(times_s)
    if n < 2:
        raise AccuracyError("%s has %d reading%s: nothing to compare" % (what, n, "" if n == 1 else "s"))
    if start_s < times_s[0]:
        raise AccuracyError("%s begins %s after the start of the infusion: the start-up curve needs a "
                            "reading at or before the start" % (what, _dur(times_s[0] - start_s)))
    if start_s > times_s[-1]:
        raise AccuracyError("%s ends %s before the start of the infusion" % (what, _dur(start_s - times_s[-1])))
    out: list[float] = []
    j = 0
    g = start_s
    while g <= times_s[-1]:
        while j + 1 < n and times_s[j + 1] <= g:
            j += 1
        t0, v0 = times_s[j], volumes_ul[j]
        if hold or t0 == g or j + 1 == n:
            if g - t0 > max_gap_s:
                raise AccuracyError("%s has a gap: nothing between %s and %s after the start" % (
                    what, _dur(t0 - start_s), _dur(times_s[j + 1] - start_s) if j + 1 < n else "its end"))
            v = v0
        else:
            t1, v1 = times_s[j + 1], volumes_ul[j + 1]
            if t1 - t0 > max_gap_s:
                raise AccuracyError("%s has a gap of %s between %s and %s after the start (the longest "
                                    "allowed is %s)" % (what, _dur(t1 - t0), _dur(t0 - start_s),
                                                        _dur(t1 - start_s), _dur(max_gap_s)))
            v = v0 + (v1 - v0) * (g - t0) / (t1 - t0)
        out.append(v)
        g = start_s + len(out) * SAMPLE_S
    base = out[0]
    return [v - base for v in out]


def figures(volumes_ul: Sequence[float], rate_ul_per_h: Fraction | float,
            stroke_ul: float | None = None, what: str = "the record") -> Figures:
    """The figures from V sampled every 0.5 min from the start (grid()), at a set rate."""
    r = float(rate_ul_per_h)
    if not r > 0:
        raise AccuracyError("the set rate must be above 0 (got %s uL/h)" % rate_ul_per_h)
    n = len(volumes_ul) - 1
    end = ANALYSIS_TO_H * SAMPLES_PER_H
    if n < end:
        raise AccuracyError("%s covers %s after the start; the start-up and trumpet curves need %d h "
                            "(%s, the second hour)" % (what, _dur(n * SAMPLE_S), ANALYSIS_TO_H, CLAUSE))
    v = volumes_ul
    per_h = float(SAMPLES_PER_H)
    startup = [(i * SAMPLE_S / 60.0, (v[i] - v[i - 1]) * per_h) for i in range(1, STARTUP_H * SAMPLES_PER_H + 1)]
    lo = ANALYSIS_FROM_H * SAMPLES_PER_H
    trumpet = [_window(v, r, lo, end, p * 60 // SAMPLE_S, p, stroke_ul) for p in WINDOWS_MIN]
    hour = v[end] - v[lo]
    mean_error = 100.0 * (hour - r) / r
    delay = None
    if hour > 0:
        delay = 60.0 - 60.0 * v[lo] / hour
    long: list[Window] = []
    missing: list[int] = []
    for h in LONG_WINDOWS_H if n > end else ():  # only a record longer than the standard's
        p = h * SAMPLES_PER_H
        if n - lo >= p:
            long.append(_window(v, r, lo, n, p, h * 60, stroke_ul))
        else:
            missing.append(h)
    span_h = (n - lo) / per_h
    long_mean = 100.0 * ((v[n] - v[lo]) / span_h - r) / r if long else None
    return Figures(r, n, startup, trumpet, mean_error, delay, long, missing, long_mean, span_h)


def _window(v: Sequence[float], r: float, lo: int, hi: int, p: int, minutes: int,
            stroke_ul: float | None) -> Window:
    # every window of p samples starting at lo..hi-p: (largest, smallest) % deviation
    want = r * minutes / 60.0
    big = small = None
    for j in range(lo, hi - p + 1):
        d = v[j + p] - v[j]
        if big is None or d > big:
            big = d
        if small is None or d < small:
            small = d
    assert big is not None and small is not None
    stroke = 100.0 * stroke_ul / want if stroke_ul else None
    return Window(minutes, 100.0 * (big - want) / want, 100.0 * (small - want) / want, hi - p + 1 - lo, stroke)


def _dur(s: float) -> str:
    # "90 s", "12.5 min", "3.2 h", "2.1 days": a duration as a person reads it
    s = float(s)
    if abs(s) < 120:
        return "%g s" % round(s, 3)
    if abs(s) < 7200:
        return "%g min" % round(s / 60, 2)
    if abs(s) < 172800:
        return "%g h" % round(s / 3600, 2)
    return "%g days" % round(s / 86400, 2)
