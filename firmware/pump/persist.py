# What the core tells and keeps: the status frame, and the state file that survives a
# power cut (docs/protocol.md, "Frames at rest").
from pump import alarms as A
from pump import auth as AU
from pump import ticks, wire
from pump.bolus import CLINICIAN, PATIENT, PRIME, Bolus
from pump.engine import RUNNING
from pump.record import Out
from pump.exact import muldivmod
from pump.program import ProgramError, validate


BOLUS_KINDS = (CLINICIAN, PATIENT, PRIME)
CODE_CLOCK = A.CODES.index(A.CLOCK)
# The counters frame's largest size (bytes). Every list in it is bounded (alarms by the
# table, line segments, patient boluses in 24 h, occlusions in an hour), every number is a
# small int of at most 11 characters: about 1.5 KB at most; pump.record raises rather
# than outgrow it.
COUNTERS_MAX = 2048


class Persistence:
    def take_state(self):
        # A snapshot to persist (replace STATE_FILE atomically), or None.
        if not self._state_dirty:
            return None
        self._state_dirty = False
        return self._snapshot()

    def status(self):
        p = self.program
        r = self.reservoir
        c = self.clock
        b = self.bolus
        return {
            "t": "status",
            "up_day": self.up_day,
            "up_ms": self.up_ms,
            "clock": [c.day, c.ms] if c.valid else None,
            "clock_restored": c.restored,
            "state": self.state,
            "stop_reason": self.stop_reason,
            "paused": self.paused,
            "drug": p.drug if p else None,
            "conc_ug_per_ml": r.conc_ug_per_ml,
            "dose_ug_per_day": self.basal.rate // 1000 if self.state == RUNNING else 0,
            "rate_ng_per_day": self.basal.rate if self.state == RUNNING else 0,
            "rate_nl_per_day": self._rate_nl_per_day(),
            "strokes_programmed": self.basal.strokes,
            "strokes_confirmed": self.strokes_confirmed,
            "strokes_unconfirmed": self.strokes_unconfirmed,
            "strokes_withheld": self.strokes_withheld,
            "in_flight": self.in_flight,
            "delivered_nl": r.delivered_nl,
            "delivered_ng": self.patient_ng,
            "reservoir_nl": r.volume_nl,
            "window_24h_ng": self.window.total_ng,
            "bolus": b.to_wire() if b else None,
            "bridge_nl": self.line.nl_unlike(r.conc_ug_per_ml) if r.conc_ug_per_ml else 0,
            "titration_in_ms": ticks.diff(self.titration[1], self.now) if self.titration else None,
            "reservoir_ng": r.volume_nl * r.conc_ug_per_ml // 1000,
            "reservoir_uncertain_nl": self.uncertain_nl,
            "days_to_low": self.days_to_low,
            "days_to_empty": self.days_to_empty,
            "alarms": self.alarms.to_wire(),
            "silenced": self.alarms.silenced,
            "pressure_mbar": self.occl.baseline + self.occl.excess,
            "pressure_excess_mbar": self.occl.excess,
            "battery_mv": self.supply.mv,
            "link": self._link_wire(),
            "auth": {"ctr": {AU.CLINICIAN: self.auth.ctr[AU.CLINICIAN], AU.PATIENT: self.auth.ctr[AU.PATIENT]},
                     "failures": self.auth.failures, "locked_ms": self.auth.locked_ms(self.now)},
        }

    def _link_wire(self):
        r = self.reader
        st = self.link_stats
        return {"frames": st.frames, "bad_crc": r.bad_crc, "bad_format": r.bad_format, "oversize": r.oversize,
                "garbage_bytes": r.garbage_bytes, "out_of_order": st.out_of_order, "seq_gaps": st.seq_gaps,
                "unknown_command": st.unknown_command, "bad_request": st.bad_request,
                "auth_failed": st.auth_failed}

    def _rate_nl_per_day(self):
        if self.state != RUNNING or not self.basal.rate:
            return 0
        conc = self._tip_conc()
        q, _ = muldivmod(self.basal.rate, 1000, 0, conc)
        return q

    def _snapshot(self):
        # The state file is two frames (docs/protocol.md, "Frames at rest"): the therapy
        # settings, encoded again only when they change, and the counters, written in
        # place after them into one preallocated buffer (pump.record): a write allocates
        # next to nothing. The bytes returned are valid until the next take_state().
        if self._therapy_frame is None:
            frame = wire.encode(0, {
                "t": "therapy",
                "program": self.program.to_dict() if self.program else None,
                "limits": self.limits.to_dict(),
                "paused": self.paused,
                "alarm_settings": [self.low_nl, self.low_days, self.floor_nl],
                "titration": self.titration[0].to_dict() if self.titration is not None else None,
                "keys_blocked": self.keys_blocked,
            })
            self._therapy_frame = frame
            if self._record is None or len(self._record.buf) < len(frame) + COUNTERS_MAX:
                # made at the first write, and anew only for a larger therapy frame (a new
                # program): between them every write reuses it
                self._record = Out(len(frame) + COUNTERS_MAX)
            out = self._record
            out.n = 0
            out.raw(frame)
        out = self._record
        out.n = len(self._therapy_frame)
        self._write_counters(out)
        return memoryview(out.buf)[:out.n]

    def _write_counters(self, out):
        # The counters, in the lease's terms (pump.engine, "lease"): what is left is stored
        # less what is in flight and what may still be commanded before the next write,
        # and the 24 h record with the lease's drug counted, so that a power cut at any
        # moment before that write can only under-state the reservoir (by what is stored
        # as reserved_nl) and over-state the 24 h record. Delivered figures are stored as
        # they are. Times are stored as "ms ago" or "ms from now", and restored as if no
        # time passed while the power was off.
        r = self.reservoir
        stroke = self.cfg.stroke_nl
        if self.lease_due:
            self.lease_due = False
            self.lease_left_nl = self._lease_nl()
        reserved = self.in_flight * stroke + self.lease_left_nl
        if reserved > r.volume_nl:
            reserved = r.volume_nl
        c = self.clock
        out.begin(1)
        out.raw(b'{"alarms":')
        self.alarms.write_record(out)
        out.raw(b',"auth":')
        out.ints(self.auth.record())
        out.raw(b',"bolus":')
        b = self.bolus
        if b is None:
            out.raw(b"null")
        else:
            out.raw(b"[")
            out.int(BOLUS_KINDS.index(b.kind))
            out.raw(b",")
            b.write_record(out)
            out.raw(b"]")
        out.raw(b',"bridge":')
        br = self.bridge
        if br is None:
            out.raw(b"null")
        else:
            out.ints((br[0], br[1], (self.up_day - br[2]) * 1440 + (self.up_ms - br[3]) // 60000))
        out.raw(b',"clock":')
        out.ints((1 if c.valid else 0, 1 if c.restored else 0, c.day, c.ms))
        out.raw(b',"line":')
        out.lists(self.line.segments)
        out.raw(b',"n":')
        # (the order is the restore's: pump.persist._restore_counters reads by position)
        out.ints((self.boots, r.conc_ug_per_ml, r.volume_nl - reserved, self.uncertain_nl, r.delivered_nl,
                  self.patient_ng, self.patient_pg, self.strokes_confirmed, self.strokes_unconfirmed,
                  self.basal.strokes, self.strokes_withheld,
                  # the pressure baseline: a blocked line must not become the norm after a restart
                  1 if self.occl.have_baseline else 0, self.occl.baseline, self.misses,
                  ticks.diff(self.titration[1], self.now) if self.titration is not None else -1,
                  self.window.pg, reserved))
        out.raw(b',"occlusions":')
        t = self._occlusions_recent()
        out.ints([self.up_min() - m for m in t] if t else ())
        out.raw(b',"patient":[')
        self._write_agos(out, self._patient_recent())
        out.raw(b'],"t":"counters","v":2,"window":')
        self.window.write_record(out, self._lease_ng())
        out.raw(b"}")
        out.end()

    def _write_agos(self, out, times):
        i = 0
        while i < len(times):
            if i:
                out.raw(b",")
            out.int(ticks.diff(self.now, times[i]))
            i += 1

    def _lease_ng(self):
        # the most drug the lease's volume can carry: at the strongest concentration in
        # the line or the reservoir (ceil)
        conc = self._strongest_conc()
        return (self.lease_left_nl * conc + 999) // 1000

    def _restore(self, stored):
        if not stored:
            return False
        frames = wire.Reader(max_frame=len(stored) + 1).feed(stored)
        if len(frames) != 2 or frames[0].body.get("t") != "therapy" or frames[1].body.get("t") != "counters":
            self._event("state_corrupt", {"bytes": len(stored), "frames": len(frames)})
            return False
        t = frames[0].body
        s = frames[1].body
        try:
            if s.get("v") != 2:
                s = _from_v1(s)
            self._restore_therapy(t, s)
            self._restore_counters(s)
        except (KeyError, TypeError, ValueError, IndexError, ProgramError) as e:
            self._event("state_corrupt", {"reason": str(e)})
            return False
        if self.alarms.active:
            self._event("alarms_restored", {"alarms": self.alarms.to_wire()})
            self._annunciate()
        return True

    def _restore_therapy(self, t, s):
        lim = t["limits"]
        self.limits.max_rate_ng_per_day = lim["max_rate_ng_per_day"]
        self.limits.max_24h_ng = lim["max_24h_ng"]
        self.limits.max_bolus_ng = lim["max_bolus_ng"]
        self.paused = t["paused"]
        self.keys_blocked = t.get("keys_blocked", s.get("keys_blocked", ""))
        self.low_nl, self.low_days, self.floor_nl = t["alarm_settings"]
        conc = s["n"][1]
        if t["program"] is not None:
            self.program = validate(t["program"], self.cfg.stroke_nl, self.cfg.max_nl_per_day)
            if conc:
                self.program.conc_ug_per_ml = conc
            self.basal.start(self.now, 0, self.cfg.stroke_nl * self.program.conc_ug_per_ml)
        titration = t.get("titration")
        in_ms = s["n"][14]
        if titration is not None and in_ms >= 0:
            program = validate(titration, self.cfg.stroke_nl, self.cfg.max_nl_per_day)
            self.titration = (program, ticks.add(self.now, in_ms))

    def _restore_counters(self, s):
        n = s["n"]
        self.boots = n[0]
        conc = n[1]
        if conc:
            self.reservoir.fill(n[2], conc)
            self.reservoir.delivered_nl = n[4]
            # what the stored reservoir may under-state: the reserve of this write (in
            # flight and leased, perhaps never turned) on top of what earlier ones left
            self.uncertain_nl = n[3] + n[16]
        self.patient_ng = n[5]
        self.patient_pg = n[6]
        self.strokes_confirmed = n[7]
        self.strokes_unconfirmed = n[8]
        self.basal.strokes = n[9]
        self.strokes_withheld = n[10]
        if n[11]:
            # the detectors resume where they were, so a condition that still holds
            # keeps its alarm and one that has gone clears it
            self.occl.baseline = n[12]
            self.occl.have_baseline = True
        self.misses = n[13]
        self.window.pg = n[15]
        c = s["clock"]
        if c[0]:
            self.clock.set(c[2], c[3])
            self.clock.restored = True
        self.auth.restore(s["auth"])
        # (the clock's alarm is decided again at boot: the clock restored is not set)
        self.alarms.restore([item for item in s["alarms"] if item[0] != CODE_CLOCK])
        self.occl.occluded = self.alarms.get(A.OCCLUSION) is not None
        if self.alarms.get(A.SENSOR) is not None:
            self.occl.restore_fault()
        self.supply.band = 2 if self.alarms.get(A.END_OF_SERVICE) else (1 if self.alarms.get(A.BATTERY_LOW) else 0)
        self.line.segments = [[v, c] for v, c in s["line"]]
        self.line.volume_nl = sum(v for v, _ in s["line"])
        self._restore_line(conc, n[16])
        self.window.restore(s["window"][1], s["window"][0])
        self.patient_times = [self._ago(ago) for ago in s["patient"]]
        # (minutes ago: the uptime starts again at 0)
        self.occlusions = [-ago for ago in s["occlusions"]]
        br = s["bridge"]
        if br is not None:
            # (the minutes it ran count from before the restart)
            self.bridge = [br[0], br[1], -(br[2] // 1440), -(br[2] % 1440) * 60000]
        if s["bolus"] is not None:
            self._restore_bolus(s["bolus"], n[16])

    def _restore_line(self, conc, reserved_nl):
        # The line as stored may lag the truth by up to the reserve (strokes in flight and
        # leased). While it holds another strength, the lag is taken the way that can
        # only under-deliver: if the reservoir's drug is the strongest in the line, as if
        # the reserve had been pushed (the strong drug nearer the tip); otherwise as stored
        # (the stronger old drug kept in the line longer). Strokes are then never sized
        # for a weaker drug than the one leaving the tip.
        if not reserved_nl or not self.line.holds_other(conc):
            return
        for seg in self.line.segments:
            if seg[1] > conc:
                return
        self.line.push(reserved_nl, conc)

    def _restore_bolus(self, rec, reserved_nl):
        # A clinician or patient bolus ends at a restart, logged with what the state
        # recorded: resuming it after an unknown time off could give it when nobody meant
        # it to come (docs/hazards.md). Priming goes on: the line holds priming fluid,
        # and the basal alone would take hours to push it; what may have been pushed
        # since the last write (the reserve) is taken off, never pushed twice.
        kind = BOLUS_KINDS[rec[0]]
        b = Bolus(kind, 0, 0, 0, self.now)
        b.restore_record(rec[1:])
        if kind != PRIME:
            fields = b.to_wire()
            fields["end"] = "restart"
            self._event("bolus_end", fields)
            return
        left = b.strokes_total - b.strokes_commanded - (reserved_nl + self.cfg.stroke_nl - 1) // self.cfg.stroke_nl
        if left <= 0:
            fields = b.to_wire()
            fields["end"] = "done"
            self._event("bolus_end", fields)
            return
        duration_ms = b.duration_ms // b.strokes_total * left
        self.bolus = Bolus(PRIME, left, duration_ms if duration_ms > 0 else 1, 0, self.now)
        self._event("bolus_start", {"kind": PRIME, "strokes": left, "duration_ms": self.bolus.duration_ms,
                                    "resumed": True})

    def _ago(self, ago_ms):
        # signed ticks of a moment ago_ms before now (ago_ms < 2**29)
        return ticks.sub(self.now, ago_ms)


def _from_v1(s):
    # The counters of state files written before the in-place record (a dict of named
    # fields, the lease already debited from reservoir_nl and added to delivered_*), read
    # into the present layout so that a firmware update keeps the pump's state.
    clock = s["clock"]
    base = s.get("pressure_baseline_mbar")
    ctr = s.get("auth_ctr", [0, 0])
    codes = []
    for item in s["alarms"]:
        if item[0] in A.TABLE:
            codes.append([A.CODES.index(item[0])] + list(item[1:]))
    br = s.get("bridge")
    return {
        "n": [s["boots"], s["conc_ug_per_ml"], s["reservoir_nl"], 0, s["delivered_nl"], s["delivered_ng"], 0,
              s["strokes_confirmed"], 0, 0, 0, 0 if base is None else 1, base or 0, 0, -1, 0, 0],
        "clock": [1 if clock["valid"] else 0, 0, clock["day"], clock["ms"]],
        "auth": ctr, "alarms": codes, "line": s["line"], "window": [12, s["window"]],
        "patient": s["patient_ago_ms"], "occlusions": [], "bridge": br, "bolus": None,
        "keys_blocked": s.get("keys_blocked", ""),
    }
