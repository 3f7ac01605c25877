# A program with a missing, zero, negative, non-integer or absurd value is refused with an
# error naming the field, the value and the allowed range.
from check import raises
from pump.program import ProgramError, validate

STROKE_NL = 250
MAX_NL_PER_DAY = 30000000
GOOD = {"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 200}


def _with(**changes):
    fields = dict(GOOD)
    for k, v in changes.items():
        if v is _DROP:
            del fields[k]
        else:
            fields[k] = v
    return fields


_DROP = object()


def _refused(fields):
    return raises(ProgramError, validate, fields, STROKE_NL, MAX_NL_PER_DAY)


def test_a_good_program_is_accepted():
    p = validate(GOOD, STROKE_NL, MAX_NL_PER_DAY)
    assert p.continuous_ng_per_day() == 200000
    # the shorthand is stored in the full form: one profile, one step, every weekday
    assert p.to_dict()["profiles"] == {"all": [[0, 200000]]}
    assert p.to_dict()["week"] == ["all"] * 7


def test_each_bad_value_names_field_value_and_range():
    cases = [
        ("dose_ug_per_day", _DROP, "missing", "1..3000"),
        ("dose_ug_per_day", 0, "0", "1..3000"),
        ("dose_ug_per_day", -5, "-5", "1..3000"),
        ("dose_ug_per_day", 10 ** 9, "1000000000", "1..3000"),
        ("dose_ug_per_day", "200", "'200'", "1..3000"),
        ("dose_ug_per_day", True, "True", "1..3000"),
        ("conc_ug_per_ml", 0, "0", "10..5000"),
        ("conc_ug_per_ml", 99999, "99999", "10..5000"),
        ("conc_ug_per_ml", _DROP, "missing", "10..5000"),
        ("conc_ug_per_ml", None, "None", "10..5000"),
    ]
    for field, value, shown, allowed in cases:
        e = _refused(_with(**{field: value}))
        assert e.field == field, (field, value, e.field)
        text = e.reason()
        assert text.startswith(field + "="), text
        assert shown in text or (shown == "missing" and "missing" in text), (shown, text)
        assert allowed in text, (allowed, text)


def test_drug_name_is_required():
    assert _refused(_with(drug=_DROP)).field == "drug"
    assert _refused(_with(drug="")).field == "drug"
    assert _refused(_with(drug="x" * 25)).field == "drug"


def test_not_an_object():
    assert _refused([1, 2]).field == "program"


def test_a_rate_this_head_cannot_deliver_is_refused_with_the_reachable_range():
    # 1 ug/day of 5000 ug/mL is 200 nL/day: less than one 250 nL stroke a day
    e = _refused(_with(conc_ug_per_ml=5000, dose_ug_per_day=1))
    assert e.field == "dose_ug_per_day"
    assert "delivers 2..3000 ug/day" in e.reason(), e.reason()
    # 3000 ug/day of 50 ug/mL is 60 mL/day, above the 30 mL/day head
    e = _refused(_with(conc_ug_per_ml=50, dose_ug_per_day=3000))
    assert "delivers 1..1500 ug/day" in e.reason(), e.reason()
