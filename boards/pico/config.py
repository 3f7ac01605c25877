# The real Pico board's pin map and calibration: every number the Pico adapters use, with
# its unit in its name and where it comes from. Values marked "assumption" are bench
# defaults to replace with measured ones (docs/pico.md says how).

# ---- motor driver ------------------------------------------------------------------------
# "stepdir": an A4988 / DRV8825 / TMC2209 style driver (STEP, DIR, EN pins), step pulses
# from PIO. "uln2003": a ULN2003 board driving a 28BYJ-48, half-stepped from a timer.
DRIVER = "stepdir"

# ---- pins (GPIO numbers; physical pins from the Raspberry Pi Pico datasheet pinout) -----
# GP0/GP1 stay free for a UART0 debug console. GP23, GP24, GP25 and GP29 are wired on the
# board itself (SMPS mode, VBUS sense, LED, VSYS/3 on the Pico; the wireless chip on the
# Pico W), so none of them is used as a plain GPIO here.
STEP_PIN = 2  # GP2, physical pin 4: driver STEP (rising edge = one step)
DIR_PIN = 3  # GP3, physical pin 5: driver DIR
EN_PIN = 4  # GP4, physical pin 6: driver EN (ENABLE on A4988/TMC2209, nENBL on DRV8825)
EN_ACTIVE_LEVEL = 0  # A4988/DRV8825/TMC2209 enable input is active low (their datasheets)
DIR_FORWARD_LEVEL = 1  # assumption: DIR high pumps toward the patient; swap if it does not
ULN2003_PINS = (10, 11, 12, 13)  # GP10-GP13, physical pins 14-17: ULN2003 IN1..IN4
ROTOR_PIN = 14  # GP14, physical pin 19: rotor sensor (open-collector, pulled up, low = pulse)
BUZZER_PIN = 15  # GP15, physical pin 20: PWM slice 7 channel B drives the buzzer
SERVICE_PIN = 22  # GP22, physical pin 29: held to GND at boot = service mode (no pump)
SERVICE_ACTIVE_LEVEL = 0  # the pin has the internal pull-up; a jumper or button grounds it
LED_PIN = "LED"  # MicroPython's name for the on-board LED: GP25 on Pico, WL_GPIO0 on Pico W
PRESSURE_ADC_PIN = 26  # GP26 = ADC0, physical pin 31
VSYS_ADC_PIN = 29  # GP29 = ADC3: VSYS/3 on a plain Pico (on a Pico W see docs/pico.md)
PIO_SM_ID = 0  # PIO0 state machine 0 makes the step pulses

# ---- motor and pump head -----------------------------------------------------------------
if DRIVER == "uln2003":
    # 28BYJ-48: 64 half-steps per rotor turn through a ~1:64 gearbox, ~4096 half-steps per
    # output turn. Assumption: a stroke (one rotor-sensor pulse) is 1/8 of the head's turn.
    STEPS_PER_STROKE = 512
    STEP_RATE_HZ = 500  # assumption: a half-step rate a 5 V 28BYJ-48 follows without stalling
else:
    # assumption: a 200-step motor at 1/16 microstepping, one stroke every 64 microsteps
    STEPS_PER_STROKE = 64
    STEP_RATE_HZ = 400  # one stroke in 160 ms; PIO needs STEP_RATE_HZ * 32 >= 1908 Hz
STROKE_NL = 250  # assumption until calibrated by weighing (docs/pico.md): 1/600 of 0.15 mL

# ---- therapy bounds -------------------------------------------------------------------------
RESERVOIR_CAPACITY_NL = 20000000  # assumption: the bench reservoir holds 20 mL
# 4 mL/day: twice the top of intrathecal maintenance flows (0.01-2 mL/day, DESIGN.md), so
# a wrong program cannot run the pump at the head's full speed.
MAX_NL_PER_DAY = 4000000

# ---- pressure sensor ------------------------------------------------------------------------
# Assumption: a 0.5-4.5 V ratiometric 0-4 bar transducer on 5 V, through a 10 k / 20 k
# divider (x2/3, so 4.5 V reads 3.0 V) into ADC0. read_u16() spans 0..65535 over ADC_VREF.
ADC_VREF_MV = 3300  # Pico datasheet: ADC_VREF is the 3.3 V supply, filtered on the board
ADC_FULL_SCALE_RAW = 65535  # ADC.read_u16() scale (the RP2040 ADC is 12 bit, scaled up)
PRESSURE_SENSOR_ZERO_MV = 500  # sensor output at 0 bar
PRESSURE_SENSOR_MV_PER_BAR = 1000  # 4.0 V over 4 bar
PRESSURE_DIVIDER_NUM = 2  # 20 k / (10 k + 20 k)
PRESSURE_DIVIDER_DEN = 3
PRESSURE_ZERO_RAW = (PRESSURE_SENSOR_ZERO_MV * PRESSURE_DIVIDER_NUM * ADC_FULL_SCALE_RAW
                     // (PRESSURE_DIVIDER_DEN * ADC_VREF_MV))  # = 6619
PRESSURE_RAW_PER_BAR = (PRESSURE_SENSOR_MV_PER_BAR * PRESSURE_DIVIDER_NUM * ADC_FULL_SCALE_RAW
                        // (PRESSURE_DIVIDER_DEN * ADC_VREF_MV))  # = 13239

# ---- battery / supply -----------------------------------------------------------------------
VSYS_DIVIDER = 3  # Pico datasheet (power chain): GP29/ADC3 reads VSYS/3 through an on-board divider
# Supply thresholds for a single-cell LiPo on VSYS (assumption: ~3.5 V is its last tenth;
# 3.3 V still drives the stepper driver and lets the state be written). On USB alone VSYS
# is ~4.8 V and never reaches them.
BATTERY_LOW_MV = 3500
BATTERY_END_MV = 3300

# ---- rotor sensor ---------------------------------------------------------------------------
# Edges closer than this to the last counted one are bounce or noise: a stroke takes
# STEPS_PER_STROKE / STEP_RATE_HZ (160 ms or more), far longer.
ROTOR_DEBOUNCE_US = 2000

# ---- annunciator ----------------------------------------------------------------------------
BUZZER_HZ = 880  # IEC 60601-1-8 wants alarm tones with a fundamental in 150-1000 Hz
BUZZER_DUTY_U16 = 32768  # a 50 % square wave: its odd harmonics make the tone easy to locate
ANNUNCIATOR_SLOT_MS = 125  # a pattern is 16 slots of this: one 2 s cycle (docs/hal.md)

# ---- loop, link, watchdog -------------------------------------------------------------------
STATUS_PERIOD_MS = 10000
WAIT_MAX_MS = 500  # the loop wakes at least this often: feeds the watchdog, polls the link
WATCHDOG_MAX_MS = 8388  # RP2040: 24-bit counter, 2 ticks per us (MicroPython machine.WDT)
# RP2040 watchdog SCRATCH4 (WATCHDOG_BASE 0x40058000 + 0x1c, RP2040 datasheet, watchdog
# registers). The pico-sdk's watchdog_enable() stores WATCHDOG_ENABLE_MAGIC there; the
# watchdog_reboot() behind machine.reset(), mpremote reset and picotool stores 0. The
# reset cause alone cannot tell these apart. A Pico 2 (RP2350) needs its own address.
WATCHDOG_SCRATCH4_ADDR = 0x4005801C
WATCHDOG_ENABLE_MAGIC = 0x6AB73121

# ---- storage --------------------------------------------------------------------------------
STORAGE_DIR = "/data"  # on the Pico's LittleFS, beside (not inside) the deployed code
