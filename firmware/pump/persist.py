# What the core tells and keeps: the status frame, and the state file that survives a
# power cut (docs/protocol.md, "Frames at rest").
from pump import alarms as A
from pump import auth as AU
from pump import ticks, wire
from pump.engine import RUNNING
from pump.exact import muldivmod
from pump.program import ProgramError, validate


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
        # The state file is two frames: the therapy settings (encoded again only when they
        # change) and the counters (small; rewritten every lease, so every ~200 strokes).
        # Counters are stored with the lease already debited (see PumpConfig.lease_nl) and
        # times as "ms ago", restored as if no time passed while the power was off
        # (lockouts and the 24 h record come back longer, never shorter).
        if self._therapy_frame is None:
            self._therapy_frame = wire.encode(0, {
                "t": "therapy",
                "program": self.program.to_dict() if self.program else None,
                "limits": self.limits.to_dict(),
                "paused": self.paused,
                "alarm_settings": [self.low_nl, self.low_days, self.floor_nl],
            })
        return self._therapy_frame + self._counters_frame()

    def _counters_frame(self):
        r = self.reservoir
        lease = self.cfg.lease_nl
        if lease > r.volume_nl:
            lease = r.volume_nl
        self.lease_left_nl = lease
        return wire.encode(1, {
            "t": "counters",
            "boots": self.boots,
            "clock": self.clock.to_wire(),
            "conc_ug_per_ml": r.conc_ug_per_ml,
            "reservoir_nl": r.volume_nl - lease,
            "delivered_nl": r.delivered_nl + lease,
            "delivered_ng": self.patient_ng + (lease * r.conc_ug_per_ml + 999) // 1000,
            "strokes_confirmed": self.strokes_confirmed,
            "line": self.line.to_wire(),
            "window": self.window.to_wire(),
            "patient_ago_ms": [ticks.diff(self.now, t) for t in self._patient_recent()],
            "bridge": None if self.bridge is None else [
                self.bridge[0], self.bridge[1], (self.up_day - self.bridge[2]) * 1440 + (self.up_ms - self.bridge[3]) // 60000],
            # alarm latches: what was active (and acknowledged) survives a restart, and
            # the pressure baseline with them (a blocked line must not become the norm)
            "alarms": self.alarms.to_record(),
            "pressure_baseline_mbar": self.occl.baseline if self.occl.have_baseline else None,
            # the last command counters accepted: a replay stays refused after a restart
            "auth_ctr": [self.auth.ctr[AU.CLINICIAN], self.auth.ctr[AU.PATIENT]],
            "keys_blocked": self.keys_blocked,
        })

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
            self.boots = s["boots"]
            self.strokes_confirmed = s["strokes_confirmed"]
            conc = s["conc_ug_per_ml"]
            lim = t["limits"]
            self.limits.max_rate_ng_per_day = lim["max_rate_ng_per_day"]
            self.limits.max_24h_ng = lim["max_24h_ng"]
            self.limits.max_bolus_ng = lim["max_bolus_ng"]
            clock = s["clock"]
            if clock["valid"]:
                self.clock.set(clock["day"], clock["ms"])
                self.clock.restored = True
            self.paused = t["paused"]
            self.keys_blocked = s.get("keys_blocked", "")
            ctr = s.get("auth_ctr", [0, 0])  # absent in files from before authentication
            self.auth.ctr[AU.CLINICIAN] = ctr[0]
            self.auth.ctr[AU.PATIENT] = ctr[1]
            self.low_nl, self.low_days, self.floor_nl = t["alarm_settings"]
            # (the clock's alarm is decided again at boot: the clock restored is not set)
            self.alarms.restore([item for item in s["alarms"] if item[0] != A.CLOCK])
            # the detectors resume where they were, so a condition that still holds keeps
            # its alarm and one that has gone clears it
            base = s["pressure_baseline_mbar"]
            if base is not None:
                self.occl.baseline = base
                self.occl.have_baseline = True
            self.occl.occluded = self.alarms.get(A.OCCLUSION) is not None
            self.occl.fault = self.alarms.get(A.SENSOR) is not None
            self.supply.band = 2 if self.alarms.get(A.END_OF_SERVICE) else (
                1 if self.alarms.get(A.BATTERY_LOW) else 0)
            if conc:
                self.reservoir.fill(s["reservoir_nl"], conc)
                self.reservoir.delivered_nl = s["delivered_nl"]
                self.patient_ng = s["delivered_ng"]
            self.line.segments = [[v, c] for v, c in s["line"]]
            self.line.volume_nl = sum(v for v, _ in s["line"])
            self.window.restore(s["window"])
            self.patient_times = [self._ago(ago) for ago in s["patient_ago_ms"]]
            if t["program"] is not None:
                self.program = validate(t["program"], self.cfg.stroke_nl, self.cfg.max_nl_per_day)
                if conc:
                    self.program.conc_ug_per_ml = conc
                self.basal.start(self.now, 0, self.cfg.stroke_nl * self.program.conc_ug_per_ml)
        except (KeyError, TypeError, ValueError, ProgramError) as e:
            self._event("state_corrupt", {"reason": str(e)})
            return False
        br = s.get("bridge")
        if br is not None:
            # (the minutes it ran count from before the restart)
            self.bridge = [br[0], br[1], -(br[2] // 1440), -(br[2] % 1440) * 60000]
        if self.alarms.active:
            self._event("alarms_restored", {"alarms": self.alarms.to_wire()})
            self._annunciate()
        return True

    def _ago(self, ago_ms):
        # signed ticks of a moment ago_ms before now (ago_ms < 2**29)
        return ticks.sub(self.now, ago_ms)
