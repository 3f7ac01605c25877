// The Pico's 2 MB QSPI flash as a file that outlives the emulator, with erase and program
// made real. rp2040js models flash reads only, so the bootrom's two flash-writing
// functions (RP2040 datasheet 2.8.3: flash_range_erase 'RE', flash_range_program 'RP',
// found through the ROM function table) are replaced by breakpoints; the harness then
// does the operation on the chip's flash array and on the file, and returns to the caller
// as the ROM would. Everything around them (leaving XIP, flushing the cache, boot2 again)
// runs as the real code on the emulated chip.
//
// Each operation takes the time the Pico's flash chip takes (Winbond W25Q16JV datasheet,
// typical figures), spent as busy cycles: the real ROM polls the status register
// meanwhile. A power cut that falls inside an operation leaves it half done: the pages or
// sectors before the cut done, the one in progress done up to the cut's share of its
// bytes (a half-programmed page, a half-erased sector), the rest untouched.
import fs from 'node:fs';

export const FLASH_BYTES = 2 * 1024 * 1024; // W25Q16JV on the Pico (Pico datasheet)
const SECTOR = 4096;
const BLOCK = 65536;
const PAGE = 256;
const CYCLE_NS = 8; // 125 MHz
// W25Q16JV typical times: page program 0.4 ms, 4 KB sector erase 45 ms, 64 KB block
// erase 150 ms (datasheet, AC electrical characteristics, tPP, tSE, tBE2)
const PAGE_PROGRAM_NS = 400e3;
const SECTOR_ERASE_NS = 45e6;
const BLOCK_ERASE_NS = 150e6;

const BKPT_ERASE = 0xe1;
const BKPT_PROGRAM = 0xe2;

function romCode(a, b) {
  return a.charCodeAt(0) | (b.charCodeAt(0) << 8);
}

function read16(rom, addr) {
  return (rom[addr >>> 2] >>> ((addr & 2) * 8)) & 0xffff;
}

function write16(rom, addr, value) {
  const shift = (addr & 2) * 8;
  rom[addr >>> 2] = ((rom[addr >>> 2] & ~(0xffff << shift)) | (value << shift)) >>> 0;
}

// The address of a bootrom function by its two-letter code (RP2040 datasheet 2.8.3: the
// halfword at 0x14 points to a table of (code, address) halfword pairs ending in 0).
export function romFunction(rom, code) {
  let p = read16(rom, 0x14);
  for (let i = 0; i < 256; i++, p += 4) {
    const c = read16(rom, p);
    if (c === 0) break;
    if (c === code) return read16(rom, p + 2) & ~1;
  }
  throw new Error(`bootrom has no function ${code.toString(16)}`);
}

// A copy of the bootrom with BKPT at the entry of flash_range_erase and flash_range_program.
export function patchBootrom(rom) {
  const patched = new Uint32Array(rom);
  write16(patched, romFunction(rom, romCode('R', 'E')), 0xbe00 | BKPT_ERASE);
  write16(patched, romFunction(rom, romCode('R', 'P')), 0xbe00 | BKPT_PROGRAM);
  return patched;
}

export class FlashFile {
  constructor(path) {
    this.path = path;
    this.image = new Uint8Array(FLASH_BYTES).fill(0xff);
    if (fs.existsSync(path)) {
      const data = fs.readFileSync(path);
      if (data.length !== FLASH_BYTES) {
        throw new Error(`${path}: a flash image is ${FLASH_BYTES} bytes, this is ${data.length}`);
      }
      this.image.set(data);
    }
    this.fd = fs.openSync(path, fs.existsSync(path) ? 'r+' : 'w+');
    if (fs.fstatSync(this.fd).size !== FLASH_BYTES) this.persist(0, FLASH_BYTES);
    this.erases = 0; // sectors and blocks erased
    this.pages = 0; // pages programmed
    this.trace = null; // [{op, offset, bytes, cycle}] when tracing
  }

  persist(offset, length) {
    // straight to the file: whatever was written survives a kill of this process
    fs.writeSync(this.fd, this.image, offset, length, offset);
  }

  // "Drag the UF2 onto the BOOTSEL drive": its blocks written into the flash.
  writeUF2Blocks(blocks) {
    let lo = FLASH_BYTES;
    let hi = 0;
    for (const { flashAddress, payload } of blocks) {
      const offset = flashAddress - 0x10000000;
      if (offset < 0 || offset + payload.length > FLASH_BYTES) continue; // e.g. RP2350 erratum block
      this.image.set(payload, offset);
      lo = Math.min(lo, offset);
      hi = Math.max(hi, offset + payload.length);
    }
    if (hi > lo) this.persist(lo, hi - lo);
    return hi;
  }

  // The operation a breakpoint stands for, as a list of steps [{ns, apply(fraction)}].
  plan(mcu, code) {
    const r = mcu.core.registers;
    if (code === BKPT_ERASE) {
      // flash_range_erase(addr, count, block_size, block_cmd): 64 KB blocks where aligned
      // and whole, 4 KB sectors elsewhere, as the ROM does
      const addr = r[0];
      const count = r[1];
      const steps = [];
      let a = addr;
      const end = addr + count;
      while (a < end) {
        const big = a % BLOCK === 0 && end - a >= BLOCK;
        const size = big ? BLOCK : SECTOR;
        const at = a;
        steps.push({
          ns: big ? BLOCK_ERASE_NS : SECTOR_ERASE_NS,
          op: 'erase', offset: at, bytes: size,
          apply: (fraction) => this.erase(at, Math.floor(size * fraction)),
        });
        a += size;
      }
      return steps;
    }
    if (code === BKPT_PROGRAM) {
      // flash_range_program(addr, data, count): page by page, bits only go from 1 to 0
      const addr = r[0];
      const src = r[1];
      const count = r[2];
      const data = new Uint8Array(count);
      for (let i = 0; i < count; i++) data[i] = mcu.readUint8(src + i);
      const steps = [];
      for (let off = 0; off < count; off += PAGE) {
        const at = addr + off;
        const chunk = data.subarray(off, Math.min(off + PAGE, count));
        steps.push({
          ns: PAGE_PROGRAM_NS,
          op: 'program', offset: at, bytes: chunk.length,
          apply: (fraction) => this.program(at, chunk.subarray(0, Math.floor(chunk.length * fraction))),
        });
      }
      return steps;
    }
    return null;
  }

  erase(offset, length) {
    if (offset < 0 || offset + length > FLASH_BYTES) return;
    this.image.fill(0xff, offset, offset + length);
    this.persist(offset, length);
    this.erases++;
  }

  program(offset, bytes) {
    if (offset < 0 || offset + bytes.length > FLASH_BYTES) return;
    for (let i = 0; i < bytes.length; i++) this.image[offset + i] &= bytes[i];
    this.persist(offset, bytes.length);
    this.pages++;
  }

  close() {
    fs.closeSync(this.fd);
  }
}

export const FLASH_OP_CYCLE_NS = CYCLE_NS;
