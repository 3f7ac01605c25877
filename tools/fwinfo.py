# What a firmware image takes of the Pico's flash, and what it leaves for the filesystem:
# read from the UF2 file itself and from the board's definitions in the MicroPython tree
# it was built from. `make firmware` prints it; the benchmark reuses it.
#   python tools/fwinfo.py build/firmware/RPI_PICO/firmware.uf2 build/src/micropython RPI_PICO
import os
import re
import struct
import sys

XIP_BASE = 0x10000000  # flash as the RP2040/RP2350 map it (RP2040 datasheet, 2.2 address map)
UF2_BLOCK = 512
UF2_MAGIC = (0x0A324655, 0x9E5D5157, 0x0AB16F30)  # start 0, start 1, end (UF2 format)
UF2_FAMILY_PRESENT = 0x00002000
# family ids of the flash images (UF2 format's families list); a RP2350 image also carries
# a one-block "absolute" family for an erratum workaround, which is not part of the image
FAMILIES = {0xE48BFF56: "rp2040", 0xE48BFF59: "rp2350-arm-s"}


def uf2_blocks(path):
    # [(flash address, payload bytes, family id)], checked block by block
    with open(path, "rb") as f:
        data = f.read()
    if not data or len(data) % UF2_BLOCK:
        raise ValueError("%s: not a UF2 file (size %d is not a multiple of 512)" % (path, len(data)))
    blocks = []
    for off in range(0, len(data), UF2_BLOCK):
        b = data[off:off + UF2_BLOCK]
        m0, m1, flags, addr, size, _, _, family = struct.unpack_from("<8I", b)
        if (m0, m1) != UF2_MAGIC[:2] or struct.unpack_from("<I", b, 508)[0] != UF2_MAGIC[2]:
            raise ValueError("%s: block %d has no UF2 magic" % (path, off // UF2_BLOCK))
        if size > 476:
            raise ValueError("%s: block %d claims %d bytes" % (path, off // UF2_BLOCK, size))
        blocks.append((addr, b[32:32 + size], family if flags & UF2_FAMILY_PRESENT else None))
    return blocks


def image_span(path):
    # (lowest, highest + 1) flash offset the image writes, the erratum block left out
    lo = hi = None
    for addr, payload, family in uf2_blocks(path):
        if family is not None and family not in FAMILIES:
            continue
        start = addr - XIP_BASE
        if lo is None or start < lo:
            lo = start
        if hi is None or start + len(payload) > hi:
            hi = start + len(payload)
    if lo is None:
        raise ValueError("%s: no flash blocks" % path)
    return lo, hi


def _c_int(expr, names):
    # a board header's integer expression, e.g. (PICO_FLASH_SIZE_BYTES - 1024 * 1024)
    for name, value in names.items():
        expr = expr.replace(name, str(value))
    if not re.fullmatch(r"[0-9()+\-*/ uUlL]+", expr):
        raise ValueError("cannot evaluate %r" % expr)
    return int(eval(re.sub(r"(\d+)[uUlL]+", r"\1", expr).replace("/", "//")))


def _define(path, name):
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*#define\s+%s\s+(.+?)\s*(//.*)?$" % name, line)
            if m:
                return m.group(1)
    return None


def board_flash(mpy_dir, board):
    # (flash size, filesystem bytes) the board's build uses
    board_dir = os.path.join(mpy_dir, "ports", "rp2", "boards", board)
    with open(os.path.join(board_dir, "mpconfigboard.cmake")) as f:
        sdk_board = re.search(r'set\(PICO_BOARD\s+"([^"]+)"\)', f.read()).group(1)
    sdk_header = os.path.join(mpy_dir, "lib", "pico-sdk", "src", "boards", "include", "boards",
                              sdk_board + ".h")
    flash = _c_int(_define(sdk_header, "PICO_FLASH_SIZE_BYTES"), {})
    storage = _c_int(_define(os.path.join(board_dir, "mpconfigboard.h"),
                             "MICROPY_HW_FLASH_STORAGE_BYTES"), {"PICO_FLASH_SIZE_BYTES": flash})
    return flash, storage


def info(uf2_path, mpy_dir, board):
    lo, hi = image_span(uf2_path)
    flash, storage = board_flash(mpy_dir, board)
    fs_start = flash - storage
    return {"board": board, "flash_bytes": flash, "image_bytes": hi - lo, "image_end": hi,
            "fs_start": fs_start, "fs_bytes": storage, "room_bytes": fs_start - hi,
            "uf2_bytes": os.path.getsize(uf2_path)}


def report(i):
    kb = 1024
    return ("%s: image %d bytes (%.0f KB) of %d KB flash; room to grow before the filesystem "
            "%.0f KB; filesystem %d KB at 0x%x (LittleFS, %d blocks of 4 KB)"
            % (i["board"], i["image_bytes"], i["image_bytes"] / kb, i["flash_bytes"] // kb,
               i["room_bytes"] / kb, i["fs_bytes"] // kb, i["fs_start"], i["fs_bytes"] // 4096))


def main(argv):
    uf2, mpy_dir, board = argv
    i = info(uf2, mpy_dir, board)
    print(os.path.relpath(uf2) + " (drag onto the Pico's BOOTSEL drive)")
    print(report(i))
    if i["room_bytes"] < 0:
        print("the image overlaps the filesystem", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
