# What a clinician programs, and the checks a program must pass before the pump uses it.
#
# A program arrives as a dict (decoded from a frame or a stored file). validate() either
# returns a Program or raises ProgramError naming the field, the value and the allowed
# range. It never returns a half-checked program, so the caller can keep running the old
# one on refusal.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# Ranges wide enough for every labelled baclofen therapy (concentrations 50, 500 and
# 2000 ug/mL; maintenance doses of about 12-2000 ug/day, Lioresal Intrathecal labelling)
# and narrow enough to refuse typing errors. Clinical hard limits are tighter and
# per-patient; these only refuse what is absurd for any patient.
CONC_UG_PER_ML_MIN = const(10)
CONC_UG_PER_ML_MAX = const(5000)
DOSE_UG_PER_DAY_MIN = const(1)  # the continuous shorthand; profiles give ng/day
DOSE_UG_PER_DAY_MAX = const(3000)
DRUG_NAME_CHARS_MAX = const(24)
NL_PER_ML = const(1000000)


class ProgramError(ValueError):
    def __init__(self, field, value, allowed):
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__("%s=%r: %s" % (field, value, allowed))

    def reason(self):
        return "%s=%r: %s" % (self.field, self.value, self.allowed)


MIN_PER_DAY = const(1440)
STEPS_PER_DAY_MAX = const(24)  # commercial pumps offer 13 flex steps a day
PROFILES_MAX = const(7)
PROFILE_NAME_CHARS_MAX = const(12)
DOSE_NG_PER_DAY_MAX = const(3000000)
DEAD_VOLUME_NL_MAX = const(2000000)  # 2 mL: far above any pump tubing plus catheter
KEEP_OPEN_NL_PER_DAY_DEFAULT = const(6000)  # assumption: ~1 stroke every hour of 250 nL
KEEP_OPEN_NL_PER_DAY_MAX = const(100000)
PRIMING_NL_PER_HOUR_DEFAULT = const(600000)  # 0.6 mL/h: a 0.2 mL line primes in 20 min
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PATIENT_BOLUS_NG_MAX = const(1000000)  # 1 mg: a hard limit (max_bolus_ng) sits below
BOLUS_DURATION_MIN_MAX = const(1440)
PATIENT_BOLUS_DURATION_MIN_MAX = const(240)
LOCKOUT_MIN_MIN = const(10)
LOCKOUT_MIN_MAX = const(1440)
PATIENT_BOLUSES_PER_24H_MAX = const(24)


def fastest_bolus_min(dose_ng, conc_ug_per_ml, max_nl_per_day):
    # The shortest duration (whole minutes) in which this head delivers dose_ng: its
    # volume at the head's top rate. One definition for patient boluses (checked when
    # programmed) and clinician boluses (checked when asked, from their strokes).
    return fastest_bolus_min_nl(dose_ng * 1000 // conc_ug_per_ml, max_nl_per_day)


def fastest_bolus_min_nl(volume_nl, max_nl_per_day):
    q, r = divmod(volume_nl * 1440, max_nl_per_day)
    return q + (1 if r else 0)


class PatientBolus:
    # What a patient may ask for: a dose over a duration, a lockout, a cap per 24 h.
    def __init__(self, dose_ng, duration_min, lockout_min, max_per_24h):
        self.dose_ng = dose_ng
        self.duration_min = duration_min
        self.lockout_min = lockout_min
        self.max_per_24h = max_per_24h

    def to_dict(self):
        return {"dose_ng": self.dose_ng, "duration_min": self.duration_min,
                "lockout_min": self.lockout_min, "max_per_24h": self.max_per_24h}


class Program:
    # A checked program. Rates are integers with units in the names.
    def __init__(self, drug, conc_ug_per_ml, schedule, names):
        self.drug = drug
        self.conc_ug_per_ml = conc_ug_per_ml
        self.schedule = schedule  # pump.schedule.Schedule
        self.names = names  # profile names, in schedule order
        self.keep_open_nl_per_day = KEEP_OPEN_NL_PER_DAY_DEFAULT
        self.pump_dead_volume_nl = 0
        self.catheter_dead_volume_nl = 0
        self.priming_nl_per_hour = PRIMING_NL_PER_HOUR_DEFAULT
        self.patient = None  # PatientBolus, or None: no patient boluses

    def continuous_ng_per_day(self):
        # the dose rate when the schedule is one constant rate, else -1
        steps = self.schedule.profiles
        if len(steps) == 1 and len(steps[0]) == 1:
            return steps[0][0][1]
        return -1

    def to_dict(self):
        d = {
            "drug": self.drug,
            "conc_ug_per_ml": self.conc_ug_per_ml,
            "profiles": self.schedule.to_wire(self.names),
            "week": [self.names[i] for i in self.schedule.week],
            "keep_open_nl_per_day": self.keep_open_nl_per_day,
            "pump_dead_volume_nl": self.pump_dead_volume_nl,
            "catheter_dead_volume_nl": self.catheter_dead_volume_nl,
            "priming_nl_per_hour": self.priming_nl_per_hour,
        }
        if self.patient:
            d["patient_bolus"] = self.patient.to_dict()
        return d


def _int(value, field, lo, hi, unit):
    if value is None:
        raise ProgramError(field, None, "missing; allowed %d..%d %s" % (lo, hi, unit))
    if type(value) is not int:
        raise ProgramError(field, value, "must be a whole number in %d..%d %s" % (lo, hi, unit))
    if not lo <= value <= hi:
        raise ProgramError(field, value, "outside the allowed range %d..%d %s" % (lo, hi, unit))
    return value


def _int_field(fields, name, lo, hi, unit, default=None):
    if name not in fields:
        if default is not None:
            return default
        raise ProgramError(name, None, "missing; allowed %d..%d %s" % (lo, hi, unit))
    return _int(fields[name], name, lo, hi, unit)


def deliverable_ng_per_day(conc_ug_per_ml, stroke_nl, max_nl_per_day):
    # (lo, hi) dose rates this head delivers at this concentration: at least one stroke
    # a day (so stroke deadlines stay within the RP2040 tick counter's reach), at most
    # the head's volume rate. ng/day = uL/day x ug/mL.
    lo = (stroke_nl * conc_ug_per_ml + 999) // 1000
    hi = (max_nl_per_day // 1000) * conc_ug_per_ml
    return lo, hi


def _steps(value, field, lo_ng, hi_ng):
    if type(value) is not list or not 1 <= len(value) <= STEPS_PER_DAY_MAX:
        raise ProgramError(field, value, "must be a list of 1..%d steps [start_min, dose_ng_per_day]"
                           % STEPS_PER_DAY_MAX)
    steps = []
    last = -1
    for i, step in enumerate(value):
        where = "%s[%d]" % (field, i)
        if type(step) is not list or len(step) != 2:
            raise ProgramError(where, step, "must be [start_min, dose_ng_per_day]")
        start = _int(step[0], where + ".start_min", 0, MIN_PER_DAY - 1, "minutes after midnight")
        if start <= last:
            raise ProgramError(where + ".start_min", start, "must come after the previous step's %d" % last)
        last = start
        dose = _int(step[1], where + ".dose_ng_per_day", lo_ng, hi_ng,
                    "ng/day (what this pump head delivers at this concentration)")
        steps.append([start * 60000, dose])
    return steps


def validate(fields, stroke_nl, max_nl_per_day):
    # fields: dict from the wire or storage. stroke_nl and max_nl_per_day come from the
    # pump's calibration: the program must be deliverable by this pump head.
    if type(fields) is not dict:
        raise ProgramError("program", fields, "must be an object")
    drug = fields.get("drug")
    if type(drug) is not str or not 1 <= len(drug) <= DRUG_NAME_CHARS_MAX:
        raise ProgramError("drug", drug, "must be a name of 1..%d characters" % DRUG_NAME_CHARS_MAX)
    conc = _int_field(fields, "conc_ug_per_ml", CONC_UG_PER_ML_MIN, CONC_UG_PER_ML_MAX, "ug/mL")
    lo_ng, hi_ng = deliverable_ng_per_day(conc, stroke_nl, max_nl_per_day)
    if hi_ng > DOSE_NG_PER_DAY_MAX:
        hi_ng = DOSE_NG_PER_DAY_MAX
    if "profiles" in fields:
        if "dose_ug_per_day" in fields:
            raise ProgramError("dose_ug_per_day", fields["dose_ug_per_day"],
                               "give either dose_ug_per_day or profiles, not both")
        schedule, names = _schedule(fields, lo_ng, hi_ng)
    else:
        dose = _int_field(fields, "dose_ug_per_day", DOSE_UG_PER_DAY_MIN, DOSE_UG_PER_DAY_MAX, "ug/day")
        if not lo_ng <= dose * 1000 <= hi_ng:
            raise ProgramError("dose_ug_per_day", dose, "at %d ug/mL this pump head delivers %d..%d ug/day"
                               % (conc, (lo_ng + 999) // 1000, hi_ng // 1000))
        from pump.schedule import Schedule
        schedule, names = Schedule([[[0, dose * 1000]]], [0] * 7), ["all"]
    program = Program(drug, conc, schedule, names)
    stroke_pg = stroke_nl * conc
    keep_lo = stroke_nl
    program.keep_open_nl_per_day = _int_field(
        fields, "keep_open_nl_per_day", 0, KEEP_OPEN_NL_PER_DAY_MAX, "nL/day (0, or at least one stroke a day)",
        KEEP_OPEN_NL_PER_DAY_DEFAULT if KEEP_OPEN_NL_PER_DAY_DEFAULT >= keep_lo else keep_lo)
    if 0 < program.keep_open_nl_per_day < keep_lo:
        raise ProgramError("keep_open_nl_per_day", program.keep_open_nl_per_day,
                           "0, or at least one %d nL stroke a day" % stroke_nl)
    program.pump_dead_volume_nl = _int_field(fields, "pump_dead_volume_nl", 0, DEAD_VOLUME_NL_MAX, "nL", 0)
    program.catheter_dead_volume_nl = _int_field(fields, "catheter_dead_volume_nl", 0, DEAD_VOLUME_NL_MAX, "nL", 0)
    head_nl_per_hour = max_nl_per_day // 24
    program.priming_nl_per_hour = _int_field(
        fields, "priming_nl_per_hour", stroke_nl, head_nl_per_hour, "nL/h (up to this head's rate)",
        PRIMING_NL_PER_HOUR_DEFAULT if PRIMING_NL_PER_HOUR_DEFAULT <= head_nl_per_hour else head_nl_per_hour)
    pb = fields.get("patient_bolus")
    if pb is not None:
        if type(pb) is not dict:
            raise ProgramError("patient_bolus", pb, "must be an object")
        fields = {"patient_bolus." + k: v for k, v in pb.items()}
        program.patient = PatientBolus(
            _int_field(fields, "patient_bolus.dose_ng", (stroke_pg + 999) // 1000, PATIENT_BOLUS_NG_MAX,
                       "ng (at least one stroke)"),
            _int_field(fields, "patient_bolus.duration_min", 1, PATIENT_BOLUS_DURATION_MIN_MAX, "min"),
            _int_field(fields, "patient_bolus.lockout_min", LOCKOUT_MIN_MIN, LOCKOUT_MIN_MAX, "min"),
            _int_field(fields, "patient_bolus.max_per_24h", 1, PATIENT_BOLUSES_PER_24H_MAX, "boluses"),
        )
        fastest = fastest_bolus_min(program.patient.dose_ng, conc, max_nl_per_day)
        if program.patient.duration_min < fastest:
            raise ProgramError("patient_bolus.duration_min", program.patient.duration_min,
                               "this pump head needs at least %d min for %d ng at %d ug/mL"
                               % (fastest, program.patient.dose_ng, conc))
    return program


def _schedule(fields, lo_ng, hi_ng):
    from pump.schedule import Schedule
    profiles_in = fields["profiles"]
    if type(profiles_in) is not dict or not 1 <= len(profiles_in) <= PROFILES_MAX:
        raise ProgramError("profiles", profiles_in, "must map 1..%d profile names to steps" % PROFILES_MAX)
    names = sorted(profiles_in)
    profiles = []
    for name in names:
        if type(name) is not str or not 1 <= len(name) <= PROFILE_NAME_CHARS_MAX:
            raise ProgramError("profiles", name, "names must be 1..%d characters" % PROFILE_NAME_CHARS_MAX)
        profiles.append(_steps(profiles_in[name], "profiles." + name, lo_ng, hi_ng))
    week_in = fields.get("week")
    if week_in is None and len(names) == 1:
        week_in = [names[0]] * 7
    if type(week_in) is not list or len(week_in) != 7:
        raise ProgramError("week", week_in, "must list 7 profile names, Monday first")
    week = []
    for i, name in enumerate(week_in):
        if name not in profiles_in:
            raise ProgramError("week[%d]" % i, name, "must be one of the profiles: %s" % ", ".join(names))
        week.append(names.index(name))
    return Schedule(profiles, week), names
