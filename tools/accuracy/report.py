"""The flow-accuracy figures as a person reads them: tables for the terminal (and `make
bench`), a JSON object for scripts, and a PNG drawn with matplotlib's Agg backend in the
style of tools/plot.py.

The PNG carries a description of its own panels in a PNG text chunk named `accuracy`
(JSON: each panel's name, axis limits, pixel box and the colour of each line), so a
test or a script can check what was drawn without guessing at pixels.
"""
from __future__ import annotations

import json
from typing import Any

from tools.accuracy import Result, rate_text
from tools.accuracy.curves import (ANALYSIS_FROM_H, ANALYSIS_TO_H, CLAUSE, LONG_WINDOWS_H, STARTUP_H,
                                   WINDOWS_MIN, Window)

WIDTH_PX = 1200
HEIGHT_PX = 1300
DPI = 100
STARTUP_BLOCK_MIN = 10  # the terminal shows the start-up curve as means over this long
COLOURS = {"flow": "#2ca02c", "10-min mean": "#ff7f0e", "set rate": "#000080", "Ep(max)": "#d62728", "Ep(min)": "#1f77b4",
           "mean error": "#9467bd", "one stroke": "#7f7f7f"}
PNG_KEY = "accuracy"

Table = tuple[str, tuple[str, ...], list[tuple[str, ...]], list[str]]


def _pct(x: float | None) -> str:
    return "-" if x is None else "%+.2f %%" % x


def _window_rows(windows: list[Window], unit: str) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for w in windows:
        size = "%d min" % w.minutes if unit == "min" else "%d h" % (w.minutes // 60)
        rows.append((size, _pct(w.ep_max_pct), _pct(w.ep_min_pct), "%d" % w.windows,
                     "-" if w.stroke_pct is None else "%.2f %%" % w.stroke_pct))
    return rows


def heading(result: Result) -> list[str]:
    """What was measured, at what set rate: the lines above the tables."""
    return (["Set rate %s (%s nL/day, exact)." % (rate_text(result.rate_nl_per_day), _exact(result.rate_nl_per_day)),
             "Measured: %s." % result.source] + result.notes)


def tables(result: Result) -> list[Table]:
    """(title, header, rows, notes) for each part of the report."""
    f = result.figures
    out: list[Table] = []
    rows: list[tuple[str, ...]] = []
    per = STARTUP_BLOCK_MIN * 2  # 0.5-min flows in a block
    for b in range(0, STARTUP_H * 60 // STARTUP_BLOCK_MIN):
        flows = [q for _, q in f.startup[b * per:(b + 1) * per]]
        mean = sum(flows) / len(flows)
        rows.append(("%d-%d" % (b * STARTUP_BLOCK_MIN, (b + 1) * STARTUP_BLOCK_MIN), "%.3f" % mean,
                     "%.1f %%" % (100.0 * mean / f.rate_ul_per_h), "%.3f .. %.3f" % (min(flows), max(flows))))
    notes = [
        "Start-up delay: the first hour's delivery trails the second hour's mean flow by %s (a figure of "
        "this tool, not of the standard)." % ("-" if f.startup_delay_min is None else "%.2f min" % f.startup_delay_min)]
    out.append(("Start-up curve (%s): flow from 0.5-min samples over the first %d h, as the mean of each %d min" % (
        CLAUSE, STARTUP_H, STARTUP_BLOCK_MIN), ("minutes", "flow uL/h", "of set rate", "0.5-min flows, uL/h"),
        rows, notes))

    out.append(("Trumpet curve (%s): windows over the second hour (%d-%d min), sliding by 0.5 min" % (
        CLAUSE, ANALYSIS_FROM_H * 60, ANALYSIS_TO_H * 60),
        ("window", "Ep(max)", "Ep(min)", "windows", "one stroke"), _window_rows(f.trumpet, "min"),
        ["Overall mean error A (%s, the second hour): %s." % (CLAUSE, _pct(f.mean_error_pct)),
         "One stroke: a stroke's volume in % of what the window should deliver. A pump that delivers "
         "in whole strokes spreads Ep(max) and Ep(min) up to this far apart even when every stroke is exact."]))

    if f.long or f.long_missing_h:
        notes = []
        if f.long:
            notes.append("Mean error from hour %d to the end of the record (%.1f h): %s." % (
                ANALYSIS_FROM_H, f.long_span_h, _pct(f.long_mean_error_pct)))
        for h in f.long_missing_h:
            notes.append("%d h window: the record is too short (it needs %d h after the start)." % (h, h + ANALYSIS_FROM_H))
        out.append(("Beyond the standard (its windows end at %d min): windows of %s h from hour %d to the end "
                    "(%.1f h), sliding by 0.5 min" % (WINDOWS_MIN[-1], ", ".join(str(h) for h in LONG_WINDOWS_H),
                                                       ANALYSIS_FROM_H, f.long_span_h),
                    ("window", "Ep(max)", "Ep(min)", "windows", "one stroke"), _window_rows(f.long, "h"), notes))
    return out


def _exact(x: Any) -> str:
    return str(x.numerator) if x.denominator == 1 else "%d/%d" % (x.numerator, x.denominator)


def format_table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = [title, "  ".join("%-*s" % (w, h) for w, h in zip(widths, header)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join("%-*s" % (w, c) for w, c in zip(widths, row)).rstrip())
    return lines


def text(result: Result) -> str:
    lines = ["Flow accuracy: %s" % result.title] + heading(result)
    for title, header, rows, notes in tables(result):
        lines.append("")
        lines += format_table(title, header, rows)
        lines += notes
    return "\n".join(lines) + "\n"


def as_json(result: Result) -> dict[str, Any]:
    f = result.figures

    def windows(ws: list[Window]) -> list[dict[str, Any]]:
        return [w._asdict() for w in ws]
    return {"title": result.title, "source": result.source, "notes": result.notes, "clause": CLAUSE,
            "rate_nl_per_day": _exact(result.rate_nl_per_day), "rate_ul_per_h": f.rate_ul_per_h,
            "stroke_nl": result.stroke_nl, "samples": f.samples,
            "startup": [{"minute": t, "flow_ul_per_h": q} for t, q in f.startup],
            "startup_delay_min": f.startup_delay_min, "trumpet": windows(f.trumpet),
            "mean_error_pct": f.mean_error_pct, "long": windows(f.long), "long_missing_h": f.long_missing_h,
            "long_mean_error_pct": f.long_mean_error_pct, "long_span_h": f.long_span_h}


# ---- the picture ------------------------------------------------------------------------

def render_png(result: Result, path: str, width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX,
               title: str | None = None) -> dict[str, Any]:
    """Draw the figures at `path`; returns the description written into the PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    f = result.figures
    panels = 3 if f.long else 2
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(panels, 1, gridspec_kw={"height_ratios": [3, 3, 2.2][:panels]})
    described = [_startup_panel(axes[0], result), _trumpet_panel(axes[1], f.trumpet, f.mean_error_pct, "min", result)]
    if f.long:
        described.append(_trumpet_panel(axes[2], f.long, f.long_mean_error_pct, "h", result))
    fig.suptitle(title or "Flow accuracy: %s, set rate %s" % (result.title, rate_text(result.rate_nl_per_day)),
                 fontsize=13)
    fig.canvas.draw()  # lay out, so each panel's pixel box is final
    for ax, d in zip(axes, described):
        box = ax.get_window_extent()
        d["xlim"] = [float(v) for v in ax.get_xlim()]
        d["ylim"] = [float(v) for v in ax.get_ylim()]
        d["box_px"] = [round(box.x0), round(height_px - box.y1), round(box.x1), round(height_px - box.y0)]
    meta = {"width_px": width_px, "height_px": height_px, "panels": described}
    fig.savefig(path, dpi=DPI, format="png", metadata={PNG_KEY: json.dumps(meta, sort_keys=True)})
    return meta


def _startup_panel(ax: Any, result: Result) -> dict[str, Any]:
    f = result.figures
    xs = [0.0] + [t for t, _ in f.startup]
    ys = [f.startup[0][1]] + [q for _, q in f.startup]
    ax.step(xs, ys, where="pre", color=COLOURS["flow"], lw=1.2, label="flow, each 0.5 min")
    per = STARTUP_BLOCK_MIN * 2
    bx = [0.0]
    by = []
    for b in range(0, len(f.startup), per):
        block = [q for _, q in f.startup[b:b + per]]
        bx.append(f.startup[b + len(block) - 1][0])
        by.append(sum(block) / len(block))
    ax.stairs(by, bx, baseline=None, color=COLOURS["10-min mean"], lw=2.2, label="mean of each %d min" % STARTUP_BLOCK_MIN)
    ax.axhline(f.rate_ul_per_h, color=COLOURS["set rate"], ls="--", lw=1.5, label="set rate")
    ax.set_xlim(0, STARTUP_H * 60)
    top = max(max(ys), f.rate_ul_per_h)
    bottom = min(0.0, min(ys))
    ax.set_ylim(bottom - 0.05 * (top - bottom), top + 0.12 * (top - bottom))
    ax.set_title("Start-up curve (%s): flow from 0.5-min samples over the first %d h" % (CLAUSE, STARTUP_H),
                 loc="left", fontsize=10)
    ax.set_xlabel("minutes since the start")
    ax.set_ylabel("µL/h")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    return {"name": "start-up", "lines": {k: COLOURS[k] for k in ("flow", "10-min mean", "set rate")}}


def _trumpet_panel(ax: Any, windows: list[Window], mean: float | None, unit: str, result: Result) -> dict[str, Any]:
    scale = 1 if unit == "min" else 60
    xs = [w.minutes / scale for w in windows]
    hi = [w.ep_max_pct for w in windows]
    lo = [w.ep_min_pct for w in windows]
    lines = {"Ep(max)": COLOURS["Ep(max)"], "Ep(min)": COLOURS["Ep(min)"]}
    ax.plot(xs, hi, "o-", color=COLOURS["Ep(max)"], lw=1.8, label="Ep(max)")
    ax.plot(xs, lo, "o-", color=COLOURS["Ep(min)"], lw=1.8, label="Ep(min)")
    ax.axhline(0, color="#555555", lw=0.8)
    values = hi + lo
    if mean is not None:
        ax.axhline(mean, color=COLOURS["mean error"], ls="--", lw=1.5, label="mean error %+.2f %%" % mean)
        lines["mean error"] = COLOURS["mean error"]
        values.append(mean)
    env = [w.stroke_pct for w in windows if w.stroke_pct is not None]
    if len(env) == len(windows):
        ax.plot(xs, env, ":", color=COLOURS["one stroke"], lw=1.2, label="± one stroke")
        ax.plot(xs, [-e for e in env], ":", color=COLOURS["one stroke"], lw=1.2)
        lines["one stroke"] = COLOURS["one stroke"]
    top, bottom = max(values + [1.0]), min(values + [-1.0])
    pad = 0.1 * (top - bottom)
    ax.set_ylim(bottom - pad, top + pad)
    if unit == "min":
        ax.set_xlim(0, WINDOWS_MIN[-1] + 2)
        ax.set_xticks(list(WINDOWS_MIN))
        ax.set_title("Trumpet curve (%s): second hour, windows of %s min" % (
            CLAUSE, ", ".join(str(p) for p in WINDOWS_MIN)), loc="left", fontsize=10)
        ax.set_xlabel("observation window, minutes")
        name = "trumpet"
    else:
        ax.set_xlim(0, LONG_WINDOWS_H[-1] + 1)
        ax.set_xticks(list(LONG_WINDOWS_H))
        ax.set_title("Beyond the standard's windows: %s h over hours %d to %.0f" % (
            ", ".join(str(h) for h in LONG_WINDOWS_H), ANALYSIS_FROM_H, ANALYSIS_FROM_H + result.figures.long_span_h),
            loc="left", fontsize=10)
        ax.set_xlabel("observation window, hours")
        name = "long windows"
    ax.set_ylabel("deviation from the set rate, %")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    return {"name": name, "lines": lines}
