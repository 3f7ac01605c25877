# The therapy operations a clinician (or the patient) asks for: program, limits, clock,
# fill and bridge, boluses, priming, titration, pause. Each returns None when done, or
# the reason it was refused (naming the field or the limit, and the numbers); every
# refusal is an event. None of this runs per stroke.
from pump import alarms as A
from pump import guard, ticks
from pump.bolus import CLINICIAN, PATIENT, PRIME, Bolus
from pump.clock import DAY_MAX, WallClock
from pump.engine import DAY_MS, IDLE, RUNNING
from pump.exact import muldivmod
from pump.limits import LIMIT_NG_MAX, LIMIT_NG_MIN, Limits
from pump.program import (BOLUS_DURATION_MIN_MAX, CONC_UG_PER_ML_MAX, CONC_UG_PER_ML_MIN, ProgramError,
                          fastest_bolus_min_nl, validate)

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

TITRATION_DELAY_MS_MAX = const(518400000)  # 6 days: within reach of the tick counter
# A refill's withdrawn residual may differ from the pump's account by this much, or by a
# tenth of the account if more, before it is flagged (a leak, a catheter problem, or a
# previous fill that went partly into the pocket). A project choice, to be set clinically.
RESIDUAL_TOLERANCE_NL = const(500000)
LOW_DAYS_MAX = const(60)
LINE_CONCS_MAX = const(3)  # concentrations queued in the line at once (a bridge at a time)


class TherapyOps:
    def set_program(self, now, fields):
        # A refused program leaves the running one untouched.
        self._op(now)
        try:
            program = validate(fields, self.cfg.stroke_nl, self.cfg.max_nl_per_day)
        except ProgramError as e:
            return self._refuse("program", None, e.reason(), e.field)
        r = self.reservoir
        if r.conc_ug_per_ml and program.conc_ug_per_ml != r.conc_ug_per_ml:
            return self._refuse("program", None, "conc_ug_per_ml=%d: the reservoir holds %d ug/mL; "
                                "refill (with a bridge) to change it" % (program.conc_ug_per_ml, r.conc_ug_per_ml),
                                "conc_ug_per_ml")
        if program.continuous_ng_per_day() < 0 and not self.clock.valid:
            return self._refuse("program", None, "profiles: a flex schedule needs the clock: set it first",
                                "profiles")
        refusal = guard.program_refusal(program, self.limits) or self._window_refusal(
            0, [program.schedule], "program")
        if refusal:
            return self._refuse("program", refusal[0], refusal[1])
        self.program = program
        self.titration = None
        dead = program.pump_dead_volume_nl + program.catheter_dead_volume_nl
        if self.reservoir.conc_ug_per_ml and self.line.uniform() and self.line.volume_nl != dead:
            # the line is assumed full of the reservoir's drug; an empty one is primed
            self.line.reset(dead, self._tip_conc())
        self._event("program", program.to_dict())
        self._changed()
        return None

    def set_limits(self, now, fields):
        self._op(now)
        new = Limits()
        for name in ("max_rate_ng_per_day", "max_24h_ng", "max_bolus_ng"):
            value = fields.get(name) if type(fields) is dict else None
            if type(value) is not int or not LIMIT_NG_MIN <= value <= LIMIT_NG_MAX:
                return self._refuse("limits", None, "%s=%r: must be a whole number in %d..%d ng"
                                    % (name, value, LIMIT_NG_MIN, LIMIT_NG_MAX), name)
            setattr(new, name, value)
        if self.program is not None:
            refusal = guard.program_refusal(self.program, new)
            if refusal:
                return self._refuse("limits", refusal[0], "the running program would break them: " + refusal[1])
        if self.titration is not None:
            refusal = guard.program_refusal(self.titration[0], new)
            if refusal:
                return self._refuse("limits", refusal[0], "the pending titration (in %d min) would break them: %s; "
                                    "titrate again within them first" % (
                                        (ticks.diff(self.titration[1], self.now) + 59999) // 60000, refusal[1]))
        self.limits = new
        self._event("limits", new.to_dict())
        self._changed()
        return None

    def set_clock(self, now, day, ms):
        # The clinician sets the wall clock. Elapsed time is untouched, so no dose is given
        # twice or skipped: only the step that applies from now on can change. The event
        # says how far the clock moved and the drug the schedule programs over the hours
        # it skipped (forward) or will repeat (back).
        self._op(now)
        if type(day) is not int or not 0 <= day <= DAY_MAX:
            return self._refuse("clock", None, "day=%r: days since 2000-01-01, 0..%d" % (day, DAY_MAX), "day")
        if type(ms) is not int or not 0 <= ms < DAY_MS:
            return self._refuse("clock", None, "ms=%r: ms after midnight, 0..%d" % (ms, DAY_MS - 1), "ms")
        c = self.clock
        fields = {"day": day, "ms": ms, "was_valid": c.valid}
        if c.valid:
            moved_ms = (day - c.day) * DAY_MS + (ms - c.ms) if abs(day - c.day) < 6 else None
            fields["moved_ms"] = moved_ms
            if moved_ms and self.program is not None and self.program.continuous_ng_per_day() < 0:
                if moved_ms > 0:
                    fields["skipped_ng"] = self.program.schedule.integral_ng_ceil(c.weekday(), c.ms, moved_ms)
                else:
                    c2 = WallClock()
                    c2.set(day, ms)
                    fields["repeated_ng"] = self.program.schedule.integral_ng_ceil(c2.weekday(), ms, -moved_ms)
        c.set(day, ms)
        self._event("clock", fields)
        self._clock_check()
        self._changed()
        return None

    def fill(self, now, volume_nl, conc_ug_per_ml, bridge=False):
        # The reservoir is (re)filled with volume_nl of conc_ug_per_ml. A new
        # concentration needs bridge=True: the line still holds the old drug, and the
        # basal runs at the old drug's strength until it has all left the tip.
        self._op(now)
        cap = self.cfg.reservoir_capacity_nl
        if type(volume_nl) is not int or not 0 < volume_nl <= cap:
            return self._refuse("fill", None, "volume_nl=%r: outside the allowed range 1..%d nL" % (volume_nl, cap),
                                "volume_nl")
        if type(conc_ug_per_ml) is not int or not CONC_UG_PER_ML_MIN <= conc_ug_per_ml <= CONC_UG_PER_ML_MAX:
            return self._refuse("fill", None, "conc_ug_per_ml=%r: outside the allowed range %d..%d ug/mL" % (
                conc_ug_per_ml, CONC_UG_PER_ML_MIN, CONC_UG_PER_ML_MAX), "conc_ug_per_ml")
        r = self.reservoir
        old = r.conc_ug_per_ml
        p = self.program
        if not old and p is not None and conc_ug_per_ml != p.conc_ug_per_ml:
            # a first fill of another strength than the program was written for: the
            # classic refill error, refused rather than guessed at
            return self._refuse("fill", None, "conc_ug_per_ml=%d: the program is for %d ug/mL; fill with that, or "
                                "set a program for %d ug/mL first" % (conc_ug_per_ml, p.conc_ug_per_ml,
                                                                      conc_ug_per_ml), "conc_ug_per_ml")
        changed = old != 0 and conc_ug_per_ml != old
        if changed and not bridge:
            return self._refuse("fill", None, "conc_ug_per_ml=%d: a change from %d ug/mL needs a bridge (the line "
                                "holds %d nL of the old drug)" % (conc_ug_per_ml, old, self.line.volume_nl),
                                "conc_ug_per_ml")
        if changed and (p is None or p.pump_dead_volume_nl + p.catheter_dead_volume_nl == 0):
            # without the line's volume the old drug's strength would be counted as the new
            return self._refuse("fill", None, "conc_ug_per_ml=%d: a change of concentration needs the line "
                                "volumes (pump_dead_volume_nl, catheter_dead_volume_nl) in the program, to bridge "
                                "the old drug still in the line" % conc_ug_per_ml, "conc_ug_per_ml")
        if changed:
            # the program counts in drug, so at a new strength it moves other volumes: it
            # must still pass its own checks there (a patient bolus the head can give in
            # its time), or the pump would hold a program the next boot refuses
            fields = p.to_dict()
            fields["conc_ug_per_ml"] = conc_ug_per_ml
            try:
                candidate = validate(fields, self.cfg.stroke_nl, self.cfg.max_nl_per_day)
            except ProgramError as e:
                return self._refuse("fill", None, "at %d ug/mL the program no longer fits: %s; set a program "
                                    "that does first" % (conc_ug_per_ml, e.reason()), e.field)
            refusal = guard.program_refusal(candidate, self.limits)
            if refusal:
                return self._refuse("fill", refusal[0], "at %d ug/mL the program breaks a limit: %s"
                                    % (conc_ug_per_ml, refusal[1]))
        if changed and len(self.line.segments) >= LINE_CONCS_MAX:
            return self._refuse("fill", None, "a bridge is still running: %d nL of older drug in the line"
                                % self.line.nl_unlike(old), "conc_ug_per_ml")
        if changed and self.bolus is not None:
            return self._refuse("fill", None, "a %s bolus is running: cancel it first" % self.bolus.kind, "bolus")
        r.fill(volume_nl, conc_ug_per_ml)
        self.uncertain_nl = 0  # what is in the reservoir is known again
        if not old:
            self.line.reset(p.pump_dead_volume_nl + p.catheter_dead_volume_nl if p else 0, conc_ug_per_ml)
        # stroke counters run from fill to fill, so the reservoir bounds them (< 2**29)
        self.strokes_confirmed = 0
        self.strokes_unconfirmed = 0
        self.strokes_withheld = 0
        self._fill_in_flight()
        self.patient_ng = 0
        self.patient_pg = 0
        for code in self.alarms.refilled():
            self._event("alarm", {"code": code, "state": "cleared"})
        self._annunciate()
        fields = {"volume_nl": volume_nl, "conc_ug_per_ml": conc_ug_per_ml}
        if changed:
            fields["bridge_nl"] = self.line.nl_unlike(conc_ug_per_ml)
        self._event("fill", fields)
        if changed:
            # the program now counts in the new strength; its doses are unchanged
            self.program.conc_ug_per_ml = conc_ug_per_ml
            self._event("program", self.program.to_dict())
            if fields["bridge_nl"]:
                self._bridge_start(old, conc_ug_per_ml, fields["bridge_nl"])
        self._changed()
        return None

    def bolus_request(self, now, dose_ng, duration_min, kind=CLINICIAN):
        # A clinician bolus (or, through patient_bolus, the patient's): dose_ng over
        # duration_min on top of the basal. Delivers whole strokes: what a stroke cannot
        # split (< 1 stroke) is not given, and the record says so.
        self._op(now)
        what = "bolus" if kind == CLINICIAN else "patient_bolus"
        reason = self._delivery_refusal() or self._bolus_slot_refusal()
        if reason:
            return self._refuse(what, None, reason)
        if type(dose_ng) is not int or not 1 <= dose_ng <= LIMIT_NG_MAX:
            return self._refuse(what, None, "dose_ng=%r: outside 1..%d ng" % (dose_ng, LIMIT_NG_MAX), "dose_ng")
        if type(duration_min) is not int or not 1 <= duration_min <= BOLUS_DURATION_MIN_MAX:
            return self._refuse(what, None, "duration_min=%r: outside 1..%d min" % (
                duration_min, BOLUS_DURATION_MIN_MAX), "duration_min")
        # Sized by the strongest drug its strokes can carry (during a bridge the line holds
        # another strength, and the basal moves it meanwhile): never more than asked for.
        stroke_pg = self.cfg.stroke_nl * self._strongest_conc()
        strokes, _ = muldivmod(dose_ng, 1000, 0, stroke_pg)
        if strokes < 1:
            return self._refuse(what, None, "dose_ng=%d: less than one stroke (%d pg)" % (dose_ng, stroke_pg),
                                "dose_ng")
        duration_ms = duration_min * 60000
        fastest = fastest_bolus_min_nl(strokes * self.cfg.stroke_nl, self.cfg.max_nl_per_day)
        if duration_min < fastest:
            return self._refuse(what, None, "duration_min=%d: %d strokes need at least %d min on this pump head"
                                % (duration_min, strokes, fastest), "duration_min")
        allowance = self._patient_allowance_ng() if kind == CLINICIAN else 0
        refusal = self._window_refusal(dose_ng, self._schedules(), what, allowance)
        if refusal:
            return self._refuse(what, refusal[0], refusal[1])
        self.bolus = Bolus(kind, strokes, duration_ms, dose_ng, self.now)
        self._event("bolus_start", {"kind": kind, "requested_ng": dose_ng, "strokes": strokes,
                                    "duration_min": duration_min})
        self._changed()
        return None

    def patient_bolus(self, now):
        # The patient asks for the bolus the program allows. Refused with the reason and
        # the time of the next allowed request when in lockout or over the 24 h cap.
        self._op(now)
        pb = self.program.patient if self.program else None
        if pb is None:
            return self._refuse("patient_bolus", None, "the program allows no patient bolus")
        reason = self._delivery_refusal()
        if reason:
            return self._refuse("patient_bolus", None, reason)
        times = self._patient_recent()
        if times:
            since = ticks.diff(self.now, times[-1])
            lockout_ms = pb.lockout_min * 60000
            if since < lockout_ms:
                return self._refuse("patient_bolus", "lockout", "lockout: %d min since the last, %d min required"
                                    % (since // 60000, pb.lockout_min), None, lockout_ms - since)
        if len(times) >= pb.max_per_24h:
            wait = DAY_MS - ticks.diff(self.now, times[0])
            return self._refuse("patient_bolus", "max_per_24h", "%d of %d patient boluses used in the last 24 h"
                                % (len(times), pb.max_per_24h), None, wait)
        reason = self.bolus_request(now, pb.dose_ng, pb.duration_min, PATIENT)
        if reason is None:
            self.patient_times.append(self.now)
        return reason

    def prime(self, now, part="all"):
        # Fill an empty line with drug: "all" (pump tubing and catheter) or "catheter"
        # (after a catheter revision). The basal stops meanwhile: nothing that leaves the
        # tip is drug until the new drug arrives, and none of it is counted as delivered.
        self._op(now)
        p = self.program
        if p is None or not self.reservoir.conc_ug_per_ml:
            return self._refuse("prime", None, "nothing to prime with: program and fill the pump first")
        reason = self._delivery_refusal() or self._bolus_slot_refusal()
        if reason:
            return self._refuse("prime", None, reason)
        if part == "all":
            volume = p.pump_dead_volume_nl + p.catheter_dead_volume_nl
        elif part == "catheter":
            volume = p.catheter_dead_volume_nl
        else:
            return self._refuse("prime", None, "part=%r: 'all' or 'catheter'" % (part,), "part")
        if volume == 0:
            return self._refuse("prime", None, "the program's dead volume for %r is 0 nL" % part, "part")
        stroke = self.cfg.stroke_nl
        if part == "all" or self.line.volume_nl != p.pump_dead_volume_nl + p.catheter_dead_volume_nl:
            self.line.reset(p.pump_dead_volume_nl + p.catheter_dead_volume_nl, self.reservoir.conc_ug_per_ml)
        self.line.empty_from_tip(volume)  # (the pump tubing keeps what it holds, a bridge's old drug too)
        self._bridge_check()
        # strokes still turning push the emptied line too: they are part of the priming
        strokes = (volume + stroke - 1) // stroke - self.in_flight
        if strokes < 1:
            strokes = 1
        duration_ms, _ = muldivmod(strokes * stroke, 3600000, p.priming_nl_per_hour - 1, p.priming_nl_per_hour)
        self.bolus = Bolus(PRIME, strokes, duration_ms, 0, self.now)
        self._event("bolus_start", {"kind": PRIME, "volume_nl": volume, "strokes": strokes,
                                    "duration_ms": duration_ms})
        self._changed()
        return None

    def cancel_bolus(self, now):
        self._op(now)
        b = self.bolus
        if b is None:
            return self._refuse("cancel", None, "no bolus to cancel")
        self._end_bolus("cancelled")
        return None

    def titrate(self, now, percent=None, daily_ng=None, in_min=0):
        # Change every step's dose by percent, or scale each day profile to daily_ng per
        # day, from in_min minutes from now. Checked against the limits now.
        self._op(now)
        p = self.program
        if p is None:
            return self._refuse("titration", None, "no program to titrate")
        if (percent is None) == (daily_ng is None):
            return self._refuse("titration", None, "give percent or daily_ng")
        if type(in_min) is not int or not 0 <= in_min <= TITRATION_DELAY_MS_MAX // 60000:
            return self._refuse("titration", None, "in_min=%r: 0..%d" % (in_min, TITRATION_DELAY_MS_MAX // 60000),
                                "in_min")
        sched = p.schedule
        if percent is not None:
            if type(percent) is not int or not -90 <= percent <= 100:
                return self._refuse("titration", None, "percent=%r: -90..100" % (percent,), "percent")
            new = sched.scaled(100 + percent, 100)
        else:
            if type(daily_ng) is not int or not 1000 <= daily_ng <= 3000000:
                return self._refuse("titration", None, "daily_ng=%r: 1000..3000000 ng" % (daily_ng,), "daily_ng")
            # each day profile keeps its shape and is scaled to daily_ng a day
            profiles = [sched.scaled_to_daily(i, daily_ng) for i in range(len(sched.profiles))]
            new = type(sched)(profiles, list(sched.week))
        fields = p.to_dict()
        fields["profiles"] = new.to_wire(p.names)
        fields.pop("dose_ug_per_day", None)
        try:
            candidate = validate(fields, self.cfg.stroke_nl, self.cfg.max_nl_per_day)
        except ProgramError as e:
            return self._refuse("titration", None, e.reason(), e.field)
        refusal = guard.program_refusal(candidate, self.limits) or self._window_refusal(
            0, [sched, new], "titration")
        if refusal:
            return self._refuse("titration", refusal[0], refusal[1])
        at = ticks.add(self.now, in_min * 60000)
        self.titration = (candidate, at)
        self._event("titration", {"percent": percent, "daily_ng": daily_ng, "in_min": in_min})
        if in_min == 0:
            self._apply_titration()
            return None
        self._changed()
        return None

    def pause(self, now):
        self._op(now)
        if self.paused:
            return self._refuse("pause", None, "already paused")
        self.paused = True
        self._event("pause", {"keep_open_nl_per_day": self.program.keep_open_nl_per_day if self.program else 0})
        self._changed()
        return None

    def resume(self, now):
        self._op(now)
        if not self.paused:
            return self._refuse("resume", None, "not paused")
        self.paused = False
        self._event("resume", {})
        self._changed()
        return None

    def refill(self, now, withdrawn_nl, volume_nl, conc_ug_per_ml, conc_again, bridge=False):
        # The refill workflow: the residual the clinician withdrew is compared with what
        # the pump expects to be left (a difference beyond the tolerance is flagged); the
        # concentration is entered twice and must agree; then the new fill (with the
        # bridge when the concentration changes: see fill()).
        self._op(now)
        if conc_ug_per_ml != conc_again:
            return self._refuse("refill", None, "the concentration was entered as %r and as %r: they must agree"
                                % (conc_ug_per_ml, conc_again), "conc_again")
        cap = self.cfg.reservoir_capacity_nl
        if type(withdrawn_nl) is not int or not 0 <= withdrawn_nl <= cap:
            return self._refuse("refill", None, "withdrawn_nl=%r: outside the allowed range 0..%d nL"
                                % (withdrawn_nl, cap), "withdrawn_nl")
        # after power cuts the account may under-state what is left by up to
        # uncertain_nl: a residual within [expected, expected + uncertain_nl] matches it
        expected = self.reservoir.volume_nl
        uncertain = self.uncertain_nl
        tolerance = expected // 10 if expected // 10 > RESIDUAL_TOLERANCE_NL else RESIDUAL_TOLERANCE_NL
        difference = withdrawn_nl - expected
        if difference > uncertain:
            difference -= uncertain
        elif difference > 0:
            difference = 0
        mismatch = abs(difference) > tolerance
        reason = self.fill(now, volume_nl, conc_ug_per_ml, bridge)
        if reason is not None:
            return reason
        self._event("refill", {"expected_nl": expected, "uncertain_nl": uncertain, "withdrawn_nl": withdrawn_nl,
                               "difference_nl": difference, "tolerance_nl": tolerance, "mismatch": mismatch})
        if mismatch:
            # more left than expected: the pump delivered less than it counted (a leak,
            # a blocked catheter); less: drug went somewhere (the pocket?) or was lost
            self._alarm_event_only(A.RESIDUAL, {"expected_nl": expected, "withdrawn_nl": withdrawn_nl})
        self._plan()
        return None

    def ack(self, now):
        # Acknowledge the active alarms: those that clear on acknowledgement and whose
        # condition is gone clear; a stalled motor counts as looked at (delivery resumes
        # and the motor is tried again).
        self._op(now)
        if self.alarms.get(A.STALL) is not None:
            self.alarms.gone(A.STALL)
            self.stall_retries = 1
        cleared = self.alarms.ack()
        for code in cleared:
            self._event("alarm", {"code": code, "state": "cleared"})
            if code == A.OCCLUSION:
                self.occlusions = []  # someone looked: the count of recurrences starts again
        self._event("ack", {"cleared": cleared})
        self._annunciate()
        self._changed()
        return None

    def silence(self, now, minutes):
        # The patient silences the sound for a bounded time; the light stays. Anything
        # new, and everything still active when the time is up, sounds again.
        self._op(now)
        limit = A.SILENCE_MS_MAX // 60000
        if type(minutes) is not int or not 1 <= minutes <= limit:
            return self._refuse("silence", None, "minutes=%r: 1..%d" % (minutes, limit), "minutes")
        if self.alarms.top() is None:
            return self._refuse("silence", None, "no alarm to silence")
        self.alarms.silenced = True
        self.silence_until = ticks.add(self.now, minutes * 60000)
        self._event("silence", {"minutes": minutes})
        self._annunciate()
        self._plan_aux()
        self._plan()
        return None

    def set_alarm_settings(self, now, fields):
        # The low-reservoir alarm levels (volume, days left) and the empty floor.
        self._op(now)
        cap = self.cfg.reservoir_capacity_nl
        if type(fields) is not dict:
            return self._refuse("alarm_settings", None, "must be an object")
        values = []
        for name, lo, hi in (("low_reservoir_nl", 0, cap), ("low_days", 0, LOW_DAYS_MAX),
                             ("empty_floor_nl", 0, cap)):
            v = fields.get(name)
            if type(v) is not int or not lo <= v <= hi:
                return self._refuse("alarm_settings", None, "%s=%r: a whole number in %d..%d" % (name, v, lo, hi),
                                    name)
            values.append(v)
        if values[2] > values[0]:
            return self._refuse("alarm_settings", None, "empty_floor_nl=%d: above low_reservoir_nl=%d"
                                % (values[2], values[0]), "empty_floor_nl")
        self.low_nl, self.low_days, self.floor_nl = values
        self._event("alarm_settings", {"low_reservoir_nl": self.low_nl, "low_days": self.low_days,
                                       "empty_floor_nl": self.floor_nl})
        # the low alarms hold until a refill; new levels that no longer apply release them
        # (the projection below raises them again if they still do)
        self._alarm_release(A.LOW_VOLUME)
        self._alarm_release(A.LOW_DAYS)
        self._changed()
        return None

    def _op(self, now):
        # Start of every therapy operation: whatever fell due before `now` (strokes, step
        # boundaries, a titration) happens first, under the settings it fell due under.
        self.tick(now)

    def _delivery_refusal(self):
        # A bolus (or priming) starts only while delivery runs: one asked for while stopped
        # would be owed at the resume and go out at once.
        if self.state == RUNNING:
            return None
        if self.state == IDLE:
            return "the pump is idle: %s" % ("no program" if self.program is None else "no drug (fill it first)")
        return "delivery is stopped (%s): clear the alarm first" % self.stop_reason

    def _bolus_slot_refusal(self):
        b = self.bolus
        if b is None:
            return None
        return "a %s bolus is running (%d of %d strokes)" % (b.kind, b.strokes_confirmed, b.strokes_total)

    def _strongest_conc(self):
        c = self.reservoir.conc_ug_per_ml
        for _, conc in self.line.segments:
            if conc > c:
                c = conc
        return c

    def _schedules(self):
        # the running schedule (and a pending one), whether or not delivery runs now: a
        # stop can end at any moment
        if self.program is None:
            return []
        s = [self.program.schedule]
        if self.titration is not None:
            s.append(self.titration[0].schedule)
        return s

    def _window_refusal(self, extra_ng, schedules, what, allowance_ng=0):
        c = self.clock
        wd, ms = (c.weekday(), c.ms) if c.valid else (0, 0)
        if extra_ng:
            return guard.bolus_refusal(extra_ng, self.limits, self.window, schedules, wd, ms, allowance_ng)
        worst = guard.worst_24h_ng(self.window, schedules, wd, ms)
        if worst > self.limits.max_24h_ng:
            return ("max_24h", "with the last 24 h's deliveries it would make up to %s ug in a 24 h window, above "
                    "the 24 h maximum of %s ug" % (guard._ug(worst), guard._ug(self.limits.max_24h_ng)))
        return None

    def _patient_recent(self):
        # patient boluses accepted within the last 24 h, oldest first
        times = self.patient_times
        while times and ticks.diff(self.now, times[0]) >= DAY_MS:
            times.pop(0)
        return times

    def _patient_allowance_ng(self):
        pb = self.program.patient if self.program else None
        if pb is None:
            return 0
        return pb.dose_ng * (pb.max_per_24h - len(self._patient_recent()))

    def _refuse(self, what, limit, reason, field=None, retry_in_ms=None):
        fields = {"what": what, "limit": limit, "reason": reason}
        if field is not None:
            fields["field"] = field
        if retry_in_ms is not None:
            fields["retry_in_ms"] = retry_in_ms
            reason = "%s; next allowed in %d min" % (reason, (retry_in_ms + 59999) // 60000)
            fields["reason"] = reason
        self._event("refused", fields)
        self.last_refusal = fields
        if limit is not None and what != "patient_bolus":
            # (a patient asking during the lockout, or past the day's cap, is the program
            # working as set: logged, answered with the next allowed time, not an alarm)
            self._alarm_event_only(A.LIMIT, {"limit": limit, "what": what})
        self._plan()
        return reason
