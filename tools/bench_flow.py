"""Flow accuracy of the simulated Pico as IEC 60601-2-24 measures it (part of `make bench`).

The firmware drives the simulated head (tools/accuracy/simrun.py) for a few days at a
typical and at a minimal rate; what leaves the catheter tip is weighed by an ideal
balance, so the figures are the pump's own (its strokes and their timing), not a
balance's noise. tools.accuracy computes the start-up and trumpet figures; this prints
them side by side, with the CPU time they took.

    python -m tools.bench_flow
"""
from __future__ import annotations

import resource

from tools.accuracy import from_sim, rate_text
from tools.accuracy.curves import CLAUSE, LONG_WINDOWS_H, WINDOWS_MIN

DAYS = 3  # the 24 h windows need more than 25 h; 3 days slide them over 2 days
# (name, conc ug/mL, dose ug/day)
RATES = [
    ("typical: 500 ug/mL at 200 ug/day", 500, 200),
    ("minimal: 2000 ug/mL at 20 ug/day (0.01 mL/day, the bottom of the clinical flow range)", 2000, 20),
]


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def tables(days: int = DAYS) -> list[tuple[str, tuple[str, ...], list[tuple[str, ...]], list[str]]]:
    results = []
    cpu = []
    for name, conc, dose in RATES:
        t0 = _cpu_s()
        results.append((name, from_sim(conc, dose, days * 86400)))
        cpu.append(_cpu_s() - t0)
    header = ("window",) + tuple(h for name, _ in results for h in (
        "%s Ep(max)" % name.split(":")[0], "Ep(min)", "one stroke"))
    rows = []
    for i, p in enumerate(WINDOWS_MIN + tuple(h * 60 for h in LONG_WINDOWS_H)):
        cells = ["%d min" % p if p < 60 else "%d h *" % (p // 60)]
        for _, r in results:
            ws = r.figures.trumpet + r.figures.long
            w = ws[i]
            cells += ["%+.2f %%" % w.ep_max_pct, "%+.2f %%" % w.ep_min_pct,
                      "%.2f %%" % w.stroke_pct if w.stroke_pct is not None else "-"]
        rows.append(tuple(cells))
    means = ["mean error"]
    for _, r in results:
        means += ["%+.2f %% (2nd hour)" % r.figures.mean_error_pct, "", ""]
    rows.append(tuple(means))
    longrun = ["mean error *"]
    for _, r in results:
        mean = r.figures.long_mean_error_pct
        longrun += ["-" if mean is None else "%+.3f %% (hours 1-%d)" % (mean, days * 24), "", ""]
    rows.append(tuple(longrun))
    notes = ["%s: set rate %s; %s." % (name, rate_text(r.rate_nl_per_day), r.source) for name, r in results]
    notes.append("Trumpet windows over the second hour (%s); * windows of hours slide over hours 1 to %d, "
                 "beyond the standard's windows. One stroke: a stroke's volume in %% of the window's." % (
                     CLAUSE, days * 24))
    notes.append("CPU time: %s (resource.getrusage, this process)." % ", ".join(
        "%.2f s for %d simulated days at the %s rate" % (c, days, name.split(":")[0]) for (name, _, _), c in zip(RATES, cpu)))
    title = "Flow accuracy of the simulated Pico, IEC 60601-2-24 trumpet curve, %d days, ideal balance" % days
    return [(title, header, rows, notes)]


if __name__ == "__main__":
    from tools.accuracy.report import format_table
    for title, header, rows, notes in tables():
        print("\n".join(format_table(title, header, rows) + notes))
