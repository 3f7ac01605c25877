# The firmware image (make firmware) running the pump on an emulated RP2040, wired as the
# bench prototype: a blank flash formats at first boot, a program given over the USB serial
# runs, and what the pump counts is what the head on its pins did, stroke for stroke. The
# faults reach the pump only through its pins and ADC inputs, as on a bench: occlusion
# through the pressure input, a stalled rotor, the supply on ADC3, a hung loop that only
# the hardware watchdog gets out of.
import emukit
from emukit import STEPS_PER_STROKE, STROKE_NL, alarm_codes, wait_for

bench = emukit.bench  # the fixture

# The head's top rate on the Pico's config: 4 mL/day, a stroke every 5.4 s
FAST = {"drug": "baclofen", "conc_ug_per_ml": 50, "dose_ug_per_day": 200}


def settled(b):
    # status and head at a moment when no stroke is under way: (pump status, head report)
    def look():
        st = b.status()
        w = b.world()
        if st["in_flight"] == 0 and w["steps"] == w["strokes"] * STEPS_PER_STROKE \
                and st["strokes_confirmed"] == w["pulses"]:
            return st, w
        return None
    return wait_for(look, 60, "no stroke under way")


def test_a_blank_flash_formats_and_a_program_over_the_link_is_delivered_stroke_for_stroke(bench):
    b = bench()
    b.start()
    st0 = b.pico.status()
    assert st0["flash"]["erases"] > 0 and st0["flash"]["pages"] > 0, "LittleFS formatted the blank flash"
    hello = emukit.hello(b.link)
    assert hello["dev"] == b.pico.dev and hello["roles"] == ["clinician", "patient"]
    b.link.command("alarm_settings", {"low_reservoir_nl": 2000000, "low_days": 2, "empty_floor_nl": 0},
                   timeout_s=60)  # 20 mL at 4 mL/day lasts 5 days
    b.setup(FAST)
    start = b.pico.status()["emulated_s"]
    wait_for(lambda: b.world()["strokes"] >= 20, 60, "20 strokes at the top rate")
    st, w = settled(b)
    elapsed_s = b.pico.status()["emulated_s"] - start
    assert w["strokes"] >= 20 and w["strokes_stalled"] == 0 and w["steps_idle"] == 0 and w["steps_backward"] == 0
    assert st["strokes_confirmed"] == w["pulses"] == w["strokes"]
    assert st["strokes_unconfirmed"] == 0
    assert st["delivered_nl"] == w["strokes"] * STROKE_NL == w["pumped_nl"]
    assert st["reservoir_nl"] == 20000000 - w["pumped_nl"] == w["reservoir_nl"]
    # the rate is the program's: 16000 strokes a day, within the stroke in progress
    assert abs(w["strokes"] - elapsed_s * 16000 / 86400) <= 2, (w["strokes"], elapsed_s)
    assert st["state"] == "running" and alarm_codes(st) == [], st["alarms"]
    assert st["pressure_mbar"] < 100 and 4700 <= st["battery_mv"] <= 4900


def test_an_occluded_line_raises_occlusion_through_the_pressure_input(bench):
    b = bench().start().setup(FAST)
    wait_for(lambda: b.world()["strokes"] >= 4, 60, "a pressure baseline over a few strokes")
    b.pico.control("fault", kind="occlusion")
    st = wait_for(lambda: "occlusion" in alarm_codes(b.status()) and b.status(), 90, "the occlusion alarm")
    w = b.world()
    assert w["pressure_mbar"] > 300 and st["pressure_excess_mbar"] > 300, (w, st["pressure_excess_mbar"])
    assert st["state"] == "stopped" and st["stop_reason"] == "occlusion"


def test_a_stalled_rotor_raises_motor_stall_and_stops_delivery(bench):
    b = bench().start().setup(FAST)
    wait_for(lambda: b.world()["strokes"] >= 2, 60, "two good strokes")
    b.pico.control("fault", kind="stall")
    st = wait_for(lambda: "motor_stall" in alarm_codes(b.status()) and b.status(), 90, "the stall alarm")
    w = b.world()
    assert st["state"] == "stopped" and st["stop_reason"] == "motor_stall"
    assert w["strokes_stalled"] >= 1 and st["strokes_confirmed"] == w["pulses"]


def test_the_supply_on_adc3_gives_the_battery_bands(bench):
    # The pump samples its supply every 10 minutes (emulated): two Picos side by side, one
    # on a 3.4 V supply (low), one on 3.2 V (end of service).
    low = bench(uid="e6614103e7000001")
    end = bench(uid="e6614103e7000002")
    for b in (low, end):
        b.start().setup()
    low.pico.control("battery", mv=3400)
    end.pico.control("battery", mv=3200)
    st = wait_for(lambda: "battery_low" in alarm_codes(low.status()) and low.status(), 120, "battery_low")
    assert 3350 <= st["battery_mv"] <= 3450 and st["state"] == "running"
    assert "end_of_service" not in alarm_codes(st)
    st = wait_for(lambda: "end_of_service" in alarm_codes(end.status()) and end.status(), 120, "end_of_service")
    assert 3150 <= st["battery_mv"] <= 3250


def test_a_loop_that_stops_feeding_the_watchdog_is_reset_and_the_restart_alarmed(bench):
    b = bench().start().setup()
    boots = len(b.pico.status()["boots"])
    b.pico.control("fault", kind="hang")
    wait_for(lambda: len(b.pico.status()["boots"]) > boots, 60, "the watchdog reset")
    assert b.pico.status()["boots"][-1]["why"] == "watchdog"
    events = []
    st = wait_for(lambda: "watchdog_reset" in alarm_codes(b.link.status(60)) and b.link.status(60), 120,
                  "the watchdog_reset alarm")
    assert st["state"] == "running" and st["drug"] == "baclofen", "the program survived the reset"
    events = b.link.log_export().records
    power_ups = [e for e in events if e.get("ev") == "power_up"]
    assert power_ups[-1]["watchdog_reset"] is True and power_ups[-1]["restored"] is True
