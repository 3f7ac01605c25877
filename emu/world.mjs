// What the bench prototype wires to the Pico's pins, on the emulated chip: the stepper
// driver and peristaltic head (STEP/DIR/EN from the PIO, or the ULN2003's four phases),
// the rotor sensor, the downstream line and its pressure sensor on ADC0, the supply on
// ADC3 (VSYS/3), the service-mode jumper, and the faults of the simulated Pico
// (boards/sim/faults.py, docs/simulator.md) that make sense on pins.
//
// The physics follow boards/sim (fluid.py, head.py, battery.py) in a simpler form: a
// stroke lands in the line's compliance (800 ubar per nL), drains through the catheter
// with a half-life (6 ms open, 120 s partly occluded, never when occluded), the rollers
// hold at most 3000 mbar and leak back beyond; the CSF behind the catheter sits at a
// steady 15 mbar; the supply reads 4800 mV on USB or runs down in a straight line.
// Times are the emulator's, in ns, across chip resets.

// Pin map and head constants, as boards/pico/config.py (the firmware's own values)
export const PINS = {
  step: 2, dir: 3, en: 4, uln: [10, 11, 12, 13], rotor: 14, buzzer: 15, service: 22,
  led: 25, pressureAdc: 0, vsysAdc: 3,
};
const EN_ACTIVE = 0;
const DIR_FORWARD = 1;
const ULN_PHASES = [0b0001, 0b0011, 0b0010, 0b0110, 0b0100, 0b1100, 0b1000, 0b1001];

const LINE_UBAR_PER_NL = 800;
const OPEN_HALF_LIFE_MS = 6;
const PARTIAL_HALF_LIFE_MS = 120000;
const HEAD_MAX_EXCESS_MBAR = 3000;
const STORED_MAX_NL = HEAD_MAX_EXCESS_MBAR * 1000 / LINE_UBAR_PER_NL;
const CSF_MBAR = 15;
// 0.5-4.5 V transducer behind a 2/3 divider into a 3.3 V 12-bit ADC (docs/pico.md)
const SENSOR_ZERO_MV = 500;
const SENSOR_MV_PER_BAR = 1000;
const ADC_VREF_MV = 3300;
const ADC_MAX = 4095;
const USB_VSYS_MV = 4800;
const ROTOR_PULSE_NS = 10e6; // the sensor's output stays low 10 ms per stroke
const MS = 1e6;

export const FAULT_KINDS = ['occlusion', 'partial_occlusion', 'stall', 'missed_pulses',
  'sensor_stuck', 'sensor_noisy', 'sensor_disconnected', 'battery_discharge', 'hang'];

// A small seeded generator (xorshift32): the same seed, the same missed pulses and noise.
class Rng {
  constructor(seed) { this.s = (seed >>> 0) || 0x9e3779b9; }
  next() {
    let x = this.s;
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    this.s = x;
    return x;
  }
  below(n) { return this.next() % n; }
}

export class World {
  constructor({ stepsPerStroke = 64, strokeNl = 250, reservoirNl = 20e6, seed = 1 } = {}) {
    this.stepsPerStroke = stepsPerStroke;
    this.strokeNl = strokeNl;
    this.reservoirNl = reservoirNl;
    this.rng = new Rng(seed);
    this.serviceHeld = false;
    this.faults = {}; // kind -> params, while active
    this.batteryMv = USB_VSYS_MV;
    this.batteryFrom = null; // {ns, mv, mvPerH, floorMv} while discharging
    this.stuckAdc = -1;
    // counters the tests compare the firmware's accounting with
    this.steps = 0; // step pulses the head followed
    this.stepsIdle = 0; // pulses while the driver was released
    this.stepsBackward = 0;
    this.intoStroke = 0;
    this.strokes = 0; // strokes the rotor made
    this.pulses = 0; // rotor-sensor pulses given
    this.pulsesMissed = 0;
    this.strokesStalled = 0;
    this.pumpedNl = 0;
    this.leakedNl = 0;
    // the line: stored volume at refNs
    this.storedNl = 0;
    this.refNs = 0;
    // pin edges recorded for measurement: gpio -> [ns of each edge, level]
    this.watch = new Map();
    this.watchMax = 4096;
    this.ulnPhase = -1;
  }

  // ---- wiring to one power-up of the chip ----------------------------------------------
  attach(chip, baseNs) {
    this.chip = chip;
    this.mcu = chip.mcu;
    this.baseNs = baseNs;
    const g = this.mcu.gpio;
    this.rotorAlarm = chip.clock.createAlarm(() => g[PINS.rotor].setInputValue(true));
    g[PINS.rotor].setInputValue(true); // pulled up, high between strokes
    g[PINS.service].setInputValue(!this.serviceHeld);
    g[PINS.step].addListener((v) => this.onStep(v));
    for (const p of PINS.uln) g[p].addListener(() => this.onPhase());
    for (const [gpio] of this.watch) this.listen(gpio);
    this.ulnPhase = -1;
    this.updateAdc();
  }

  now() {
    return this.baseNs + this.chip.clock.nanos;
  }

  level(gpio) {
    const v = this.mcu.gpio[gpio].value;
    return v === 1 ? 1 : v === 0 ? 0 : -1; // -1: not driven (an input)
  }

  listen(gpio) {
    this.mcu.gpio[gpio].addListener((v, old) => {
      if (old !== 0 && old !== 1) return; // an input becoming an output: not an edge
      const edges = this.watch.get(gpio);
      if (edges.length >= this.watchMax * 2) edges.splice(0, 2);
      edges.push(this.now(), v === 1 ? 1 : 0);
    });
  }

  watchPin(gpio) {
    if (!this.watch.has(gpio)) {
      this.watch.set(gpio, []);
      if (this.mcu) this.listen(gpio);
    } else {
      this.watch.set(gpio, []);
    }
  }

  // ---- the head ---------------------------------------------------------------------------
  onStep(v) {
    if (v !== 1) return;
    if (this.level(PINS.en) !== EN_ACTIVE) { this.stepsIdle++; return; }
    this.turn(this.level(PINS.dir) === DIR_FORWARD ? 1 : -1);
  }

  onPhase() {
    const g = this.mcu.gpio;
    let bits = 0;
    for (let i = 0; i < 4; i++) if (g[PINS.uln[i]].value === 1) bits |= 1 << i;
    const phase = ULN_PHASES.indexOf(bits);
    if (phase < 0) return; // all coils off (released) or a pattern in between
    if (this.ulnPhase >= 0) {
      if (phase === ((this.ulnPhase + 1) & 7)) this.turn(1);
      else if (phase === ((this.ulnPhase + 7) & 7)) this.turn(-1);
    }
    this.ulnPhase = phase;
  }

  turn(direction) {
    if (direction < 0) { this.stepsBackward++; return; }
    this.steps++;
    if (++this.intoStroke < this.stepsPerStroke) return;
    this.intoStroke = 0;
    if (this.faults.stall) { this.strokesStalled++; return; }
    this.stroke();
  }

  stroke() {
    const now = this.now();
    this.strokes++;
    let moved = Math.min(this.strokeNl, this.reservoirNl);
    const stored = this.stored(now);
    if (stored + moved > STORED_MAX_NL) {
      const fits = Math.max(0, STORED_MAX_NL - stored);
      this.leakedNl += moved - fits;
      moved = fits;
    }
    this.storedNl = stored + moved;
    this.refNs = now;
    this.reservoirNl -= moved;
    this.pumpedNl += moved;
    const miss = this.faults.missed_pulses;
    if (miss && this.rng.below(100) < miss.percent) { this.pulsesMissed++; } else {
      this.pulses++;
      this.mcu.gpio[PINS.rotor].setInputValue(false);
      this.rotorAlarm.schedule(ROTOR_PULSE_NS);
    }
    this.updateAdc();
  }

  halfLifeMs() {
    if (this.faults.occlusion) return Infinity;
    const p = this.faults.partial_occlusion;
    if (p) return p.half_life_s * 1000;
    return OPEN_HALF_LIFE_MS;
  }

  stored(now) {
    const h = this.halfLifeMs();
    if (h === Infinity || !this.storedNl) return this.storedNl;
    return this.storedNl * Math.pow(0.5, (now - this.refNs) / (h * MS));
  }

  pressureMbar(now = this.now()) {
    return CSF_MBAR + this.stored(now) * LINE_UBAR_PER_NL / 1000;
  }

  supplyMv(now = this.now()) {
    const d = this.batteryFrom;
    if (!d) return this.batteryMv;
    const mv = d.mv - d.mvPerH * (now - d.ns) / (3600e3 * MS);
    return Math.max(d.floorMv, mv);
  }

  // ---- ADC inputs: refreshed at every stroke, fault change and before every conversion -------
  updateAdc() {
    if (!this.mcu) return;
    const adc = this.mcu.adc;
    const now = this.now();
    let code;
    const disc = this.faults.sensor_disconnected;
    if (disc) code = disc.rail === 'high' ? ADC_MAX : 0;
    else if (this.faults.sensor_stuck) code = this.stuckAdc;
    else {
      const mv = (SENSOR_ZERO_MV + this.pressureMbar(now) * SENSOR_MV_PER_BAR / 1000) * 2 / 3;
      code = Math.round(mv * ADC_MAX / ADC_VREF_MV);
      const noisy = this.faults.sensor_noisy;
      if (noisy) code += this.rng.below(2 * noisy.lsb + 1) - noisy.lsb;
    }
    adc.channelValues[PINS.pressureAdc] = Math.max(0, Math.min(ADC_MAX, code));
    const vsys = this.supplyMv(now) / 3;
    adc.channelValues[PINS.vsysAdc] = Math.max(0, Math.min(ADC_MAX, Math.round(vsys * ADC_MAX / ADC_VREF_MV)));
  }

  hookAdc() {
    // read the world at the moment of each conversion
    const adc = this.mcu.adc;
    const start = adc.onADCRead.bind(adc);
    adc.onADCRead = (channel) => { this.updateAdc(); start(channel); };
  }

  // ---- controls ---------------------------------------------------------------------------
  setService(held) {
    this.serviceHeld = held;
    if (this.mcu) this.mcu.gpio[PINS.service].setInputValue(!held);
  }

  setFault(kind, on, params = {}) {
    if (!FAULT_KINDS.includes(kind)) throw new Error(`fault kind ${kind}: one of ${FAULT_KINDS.join(', ')}`);
    const now = this.now();
    if (kind === 'occlusion' || kind === 'partial_occlusion') {
      this.storedNl = this.stored(now); // the line's state so far, under the old half-life
      this.refNs = now;
    }
    if (kind === 'sensor_stuck' && on) this.stuckAdc = this.mcu.adc.channelValues[PINS.pressureAdc];
    if (kind === 'battery_discharge') {
      this.batteryFrom = on ? {
        ns: now, mv: params.start_mv ?? 4200, mvPerH: params.mv_per_h ?? 100,
        floorMv: params.floor_mv ?? 3000,
      } : null;
    }
    const defaults = { missed_pulses: { percent: 50 }, partial_occlusion: { half_life_s: PARTIAL_HALF_LIFE_MS / 1000 },
      sensor_noisy: { lsb: 12 }, sensor_disconnected: { rail: 'low' } }[kind] || {};
    if (on) this.faults[kind] = { ...defaults, ...params };
    else delete this.faults[kind];
    if (kind === 'hang' && on) this.hang();
    this.updateAdc();
  }

  hang() {
    // The firmware locks up: the core sleeps for ever with every interrupt masked and
    // disabled, as a stuck loop would stop feeding the watchdog; only the watchdog gets it
    // out. (A sleeping hang rather than a spinning one, so the 8 s until the watchdog
    // fires are skipped instead of emulated instruction by instruction.)
    const core = this.mcu.core;
    core.PM = true;
    core.enabledInterrupts = 0;
    const loop = 0x20041f00; // top of SRAM; nothing else runs from here on
    this.mcu.writeUint16(loop, 0xbf30); // wfi
    this.mcu.writeUint16(loop + 2, 0xe7fd); // b back to the wfi
    core.PC = loop;
    core.waiting = false;
  }

  setBattery(mv) {
    this.batteryFrom = null;
    this.batteryMv = mv;
    this.updateAdc();
  }

  report() {
    const now = this.now();
    return {
      steps: this.steps, steps_idle: this.stepsIdle, steps_backward: this.stepsBackward,
      strokes: this.strokes, pulses: this.pulses, pulses_missed: this.pulsesMissed,
      strokes_stalled: this.strokesStalled, pumped_nl: this.pumpedNl, leaked_nl: this.leakedNl,
      reservoir_nl: this.reservoirNl, pressure_mbar: Math.round(this.pressureMbar(now)),
      supply_mv: Math.round(this.supplyMv(now)), service_held: this.serviceHeld,
      faults: this.faults,
    };
  }
}
