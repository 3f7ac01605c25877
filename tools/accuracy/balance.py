"""A balance's log turned into delivered volume, and a modelled balance for the simulator.

A balance with a serial output writes one reading a line; capture software (or the
balance itself) adds the time. Two CSV layouts are read (docs/bench.md, "Balance logs"):

    seconds,grams                     30.0,12.34567      time in seconds from any zero
    timestamp,grams                   2024-05-01T10:00:30.0,12.34567
                                      10:00:30,12.34567  (time of day; midnight is crossed)

Comma, semicolon or tab separated; a header line is optional and may name the unit
(`mg` or `g`, grams by default); a unit may also follow the number (`12.34567 g`) or
sit in a third column. `#` starts a comment line. Every problem is reported with its
file and line.

Mass becomes volume as gravimetric calibrations do it (ISO 4787's form): a balance
calibrated with steel weights shows the conventional mass m, and the water's volume is
V = m (1 - rho_air / rho_ref) / (rho_water - rho_air). rho_ref = 8000 kg/m3 and
rho_air = 1.2 kg/m3 are the conventions of OIML R 111-1; rho_water at the bench
temperature is the CIPM formula of Tanaka et al., Metrologia 38 (2001) 301-309. The
buoyancy term moves the result by about 0.1 %.
"""
from __future__ import annotations

import datetime
import math
import random
import re
from typing import NamedTuple

from tools.accuracy.curves import AccuracyError

AIR_KG_M3 = 1.2  # OIML R 111-1: the conventional air density
REF_KG_M3 = 8000.0  # OIML R 111-1: the conventional density of the reference weights
# Tanaka, Girard, Davis, Peuto, Bignell, "Recommended table for the density of water
# between 0 C and 40 C based on recent experimental reports", Metrologia 38 (2001)
# 301-309: air-free water of ocean isotopic composition at 101.325 kPa.
_A1, _A2, _A3, _A4, _A5 = -3.983035, 301.797, 522528.9, 69.34881, 999.974950
TEMP_MIN_C, TEMP_MAX_C = 0.0, 40.0
BENCH_TEMP_C = 20.0  # the default: a laboratory's reference temperature
LINES_MAX = 20_000_000  # a 1 Hz log of 200 days; anything longer is not a balance log


def water_kg_m3(temp_c: float) -> float:
    """Density of water at temp_c (0-40 C), kg/m3 (Tanaka et al. 2001)."""
    if not TEMP_MIN_C <= temp_c <= TEMP_MAX_C:
        raise AccuracyError("water temperature %g C: the density formula holds from %g to %g C" % (
            temp_c, TEMP_MIN_C, TEMP_MAX_C))
    t = temp_c
    return _A5 * (1 - (t + _A1) ** 2 * (t + _A2) / (_A3 * (t + _A4)))


def ul_per_mg(temp_c: float, air_kg_m3: float = AIR_KG_M3) -> float:
    """Microlitres of water per milligram a balance shows, buoyancy included."""
    return 1000.0 * (1 - air_kg_m3 / REF_KG_M3) / (water_kg_m3(temp_c) - air_kg_m3)


class Log(NamedTuple):
    times_s: list[float]  # from the first reading
    masses_mg: list[float]
    clock: str  # "seconds", "timestamp" or "time of day"
    first: str  # the first reading's time as written


_NUMBER = re.compile(r"^\s*([+-]?\s*(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(mg|g)?\s*$")
_UNITS = {"g": 1000.0, "mg": 1.0}


def read(path: str) -> Log:
    try:
        with open(path, "r", encoding="utf-8-sig", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise AccuracyError("%s: cannot read it (%s)" % (path, e.strerror or e)) from None
    return parse(lines, path)


def parse(lines: list[str], name: str = "balance log") -> Log:
    if len(lines) > LINES_MAX:
        raise AccuracyError("%s: %d lines, more than a balance log of %d" % (name, len(lines), LINES_MAX))
    times: list[float] = []  # as written (a time of day plus the midnights crossed)
    masses: list[float] = []
    sep: str | None = None
    unit_mg = 1000.0  # grams unless a header says otherwise
    clock = ""
    first = ""
    header = False
    day_s = 0.0
    last = ""
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if sep is None:
            sep = ";" if ";" in line else "," if "," in line else "\t" if "\t" in line else None
            if sep is None:
                raise AccuracyError("%s:%d: expected two columns, time and mass, separated by a comma, "
                                    "semicolon or tab; got %r" % (name, n, _short(line)))
        cells = [c.strip() for c in line.split(sep)]
        if not times and not header and _is_header(cells):
            words = " ".join(cells).lower()
            if re.search(r"(^|[^a-z])mg([^a-z]|$)|milligram", words):
                unit_mg = 1.0
            header = True
            continue
        if not 2 <= len(cells) <= 3:
            raise AccuracyError("%s:%d: expected time, mass (and optionally a unit), got %d column%s: %r" % (
                name, n, len(cells), "" if len(cells) == 1 else "s", _short(line)))
        kind, t = _time(cells[0], name, n)
        if not clock:
            clock = kind
            first = cells[0]
        elif kind != clock:
            raise AccuracyError("%s:%d: time %r is a %s, earlier lines give a %s: one log, one clock" % (
                name, n, cells[0], kind, clock))
        mass = _mass(cells[1:], unit_mg, name, n)
        if kind == "time of day":
            t += day_s
            if times and t < times[-1] - 43200:
                day_s += 86400.0  # back by more than 12 h: the log crossed midnight
                t += 86400.0
        if times and t <= times[-1]:
            raise AccuracyError("%s:%d: time %r is not after the line before (%r): a balance log's "
                                "times must increase" % (name, n, cells[0], _short(last)))
        times.append(t)
        masses.append(mass)
        last = line
    if not times:
        raise AccuracyError("%s: no readings in it (an empty log?)" % name)
    t0 = times[0]
    return Log([t - t0 for t in times], masses, clock, first)


def start_offset_s(log: Log, text: str) -> float:
    """A start given on the log's own clock (a date and time, or a time of day) as
    seconds after its first reading."""
    kind, t = _time(text, "--start", 0)
    first_kind, first = _time(log.first, "the log", 0)
    if kind != first_kind or kind == "seconds":
        raise AccuracyError("--start %r: give a duration after the first reading (e.g. 90s), or a %s as the "
                            "log writes it (its first reading is %r)" % (text, log.clock, log.first))
    if kind == "time of day" and t < first:
        t += 86400.0  # the start came after midnight
    if t < first:
        raise AccuracyError("--start %r is before the log's first reading (%r)" % (text, log.first))
    return t - first


def _is_header(cells: list[str]) -> bool:
    # a first line whose mass is not a number is a header (its time may be anything)
    return len(cells) >= 2 and _NUMBER.match(cells[1].replace(",", ".")) is None and not _NUMBER.match(cells[0])


def _time(cell: str, name: str, n: int) -> tuple[str, float]:
    text = cell.strip().replace(",", ".")  # a decimal comma (semicolon-separated logs)
    try:
        t = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(t):
            return "seconds", t
        raise AccuracyError("%s:%d: %r is not a time" % (name, n, cell))
    if re.match(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$", text):
        parts = [float(x) for x in text.split(":")]
        h, m, s = parts[0], parts[1], parts[2] if len(parts) > 2 else 0.0
        if h < 24 and m < 60 and s < 61:
            return "time of day", h * 3600 + m * 60 + s
    try:
        when = datetime.datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise AccuracyError("%s:%d: %r is not a time: give seconds (30.5), a time of day (10:00:30) or a "
                            "date and time (2024-05-01T10:00:30)" % (name, n, _short(cell))) from None
    if when.tzinfo is not None:
        return "timestamp", when.timestamp()
    return "timestamp", (when - datetime.datetime(1970, 1, 1)).total_seconds()


def _mass(cells: list[str], unit_mg: float, name: str, n: int) -> float:
    text = cells[0]
    if len(cells) == 2:
        text += " " + cells[1]
    m = _NUMBER.match(text.replace(",", ".") if "." not in text else text)
    if m is None:
        raise AccuracyError("%s:%d: %r is not a mass: give a number of grams (12.34567), or with its unit "
                            "(12.34567 g, 12345.67 mg)" % (name, n, _short(text)))
    value = float(m.group(1).replace(" ", ""))
    if m.group(2):
        unit_mg = _UNITS[m.group(2)]
    return value * unit_mg


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def evaporation_mg_per_h(log: Log) -> float:
    """The mass a container alone loses per hour (a blank run): minus the least-squares
    slope of its log."""
    n = len(log.times_s)
    if n < 3 or log.times_s[-1] < 600:
        raise AccuracyError("the blank run needs at least 3 readings over 10 min or more "
                            "(it has %d over %g s)" % (n, log.times_s[-1]))
    mt = sum(log.times_s) / n
    mm = sum(log.masses_mg) / n
    sxy = sum((t - mt) * (m - mm) for t, m in zip(log.times_s, log.masses_mg))
    sxx = sum((t - mt) ** 2 for t in log.times_s)
    return -sxy / sxx * 3600.0


def volumes_ul(log: Log, temp_c: float, evaporation: float = 0.0, air_kg_m3: float = AIR_KG_M3) -> list[float]:
    """The water that arrived since the first reading, uL: the mass gained plus what
    evaporated meanwhile (at `evaporation` mg/h), as volume."""
    k = ul_per_mg(temp_c, air_kg_m3)
    m0 = log.masses_mg[0]
    per_s = evaporation / 3600.0
    return [(m - m0 + per_s * t) * k for t, m in zip(log.times_s, log.masses_mg)]


class Model:
    """A balance as the bench has one: the water that arrives is weighed with a
    resolution (the display's last digit), a noise (its repeatability), and the
    container loses water to evaporation at a steady rate. Seeded: the same seed
    gives the same readings. The defaults are a semi-micro balance (0.01 mg) under a
    draught shield with an oil film on the water (assumptions, docs/bench.md)."""

    def __init__(self, resolution_mg: float = 0.01, noise_mg: float = 0.015, evaporation_mg_per_h: float = 0.02,
                 temp_c: float = BENCH_TEMP_C, container_mg: float = 20000.0, seed: int = 1,
                 air_kg_m3: float = AIR_KG_M3) -> None:
        if resolution_mg < 0 or noise_mg < 0 or evaporation_mg_per_h < 0:
            raise AccuracyError("the balance's resolution, noise and evaporation are 0 or more")
        self.resolution_mg = resolution_mg
        self.noise_mg = noise_mg
        self.evaporation_mg_per_h = evaporation_mg_per_h
        self.temp_c = temp_c
        self.container_mg = container_mg
        self.seed = seed
        self.mg_per_ul = 1.0 / ul_per_mg(temp_c, air_kg_m3)
        self._rng = random.Random(seed)

    def reading_mg(self, t_s: float, arrived_ul: float) -> float:
        m = self.container_mg + arrived_ul * self.mg_per_ul - self.evaporation_mg_per_h * t_s / 3600.0
        if self.noise_mg:
            m += self._rng.gauss(0.0, self.noise_mg)
        if self.resolution_mg:
            m = round(m / self.resolution_mg) * self.resolution_mg
        return m

    def describe(self) -> str:
        return "resolution %g mg, noise %g mg (1 sd), evaporation %g mg/h, water at %g C, seed %d" % (
            self.resolution_mg, self.noise_mg, self.evaporation_mg_per_h, self.temp_c, self.seed)


def write_csv(path: str, times_s: list[float], masses_mg: list[float]) -> None:
    """A log in the plain layout (seconds,grams), as a balance capture would write it."""
    with open(path, "w") as f:
        f.write("seconds,grams\n")
        for t, m in zip(times_s, masses_mg):
            f.write("%.3f,%.7f\n" % (t, m / 1000.0))
