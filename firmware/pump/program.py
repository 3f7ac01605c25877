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
DOSE_UG_PER_DAY_MIN = const(1)
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


class Program:
    # A checked program. Rates are integers with units in the names.
    def __init__(self, drug, conc_ug_per_ml, dose_ug_per_day):
        self.drug = drug
        self.conc_ug_per_ml = conc_ug_per_ml
        self.dose_ug_per_day = dose_ug_per_day
        self.dose_ng_per_day = dose_ug_per_day * 1000

    def volume_nl_per_day(self):
        # floor; for display only: the scheduler works in drug mass, exactly
        return self.dose_ug_per_day * (NL_PER_ML // self.conc_ug_per_ml) + (
            self.dose_ug_per_day * (NL_PER_ML % self.conc_ug_per_ml)) // self.conc_ug_per_ml

    def to_dict(self):
        return {
            "drug": self.drug,
            "conc_ug_per_ml": self.conc_ug_per_ml,
            "dose_ug_per_day": self.dose_ug_per_day,
        }


def _int_field(fields, name, lo, hi, unit):
    if name not in fields:
        raise ProgramError(name, None, "missing; allowed %d..%d %s" % (lo, hi, unit))
    value = fields[name]
    if type(value) is not int:
        raise ProgramError(name, value, "must be a whole number in %d..%d %s" % (lo, hi, unit))
    if not lo <= value <= hi:
        raise ProgramError(name, value, "outside the allowed range %d..%d %s" % (lo, hi, unit))
    return value


def validate(fields, stroke_nl, max_nl_per_day):
    # fields: dict from the wire or storage. stroke_nl and max_nl_per_day come from the
    # pump's calibration: the program must be deliverable by this pump head.
    if type(fields) is not dict:
        raise ProgramError("program", fields, "must be an object")
    drug = fields.get("drug")
    if type(drug) is not str or not 1 <= len(drug) <= DRUG_NAME_CHARS_MAX:
        raise ProgramError("drug", drug, "must be a name of 1..%d characters" % DRUG_NAME_CHARS_MAX)
    conc = _int_field(fields, "conc_ug_per_ml", CONC_UG_PER_ML_MIN, CONC_UG_PER_ML_MAX, "ug/mL")
    dose = _int_field(fields, "dose_ug_per_day", DOSE_UG_PER_DAY_MIN, DOSE_UG_PER_DAY_MAX, "ug/day")
    program = Program(drug, conc, dose)
    check_deliverable(program, "dose_ug_per_day", dose, dose, stroke_nl, max_nl_per_day)
    return program


def check_deliverable(program, field, value, dose_ug_per_day, stroke_nl, max_nl_per_day):
    # A dose rate this pump head can deliver: at least one stroke a day (so the stroke
    # clock's deadlines stay within reach of the RP2040 tick counter) and no faster
    # than the head turns.
    conc = program.conc_ug_per_ml
    # volume/day = dose/conc mL; compared without division: dose * 1e6 vs limit * conc,
    # both sides below 2**29 because dose <= 3000, conc <= 5000 and limits are checked.
    lo_ug = (stroke_nl * conc + NL_PER_ML - 1) // NL_PER_ML
    hi_ug = max_nl_per_day // 1000 * conc // 1000
    if dose_ug_per_day < lo_ug:
        raise ProgramError(field, value, "at %d ug/mL below one %d nL stroke a day; minimum %d ug/day"
                           % (conc, stroke_nl, lo_ug))
    if dose_ug_per_day > hi_ug:
        raise ProgramError(field, value, "at %d ug/mL above the pump's %d nL/day; maximum %d ug/day"
                           % (conc, max_nl_per_day, hi_ug))
