# The tools a bench engineer uses, against the emulated Pico's USB serial exactly as
# against /dev/ttyACM0: `make deploy` (tools/deploy with the real mpremote) copies the
# .mpy image into its LittleFS and resets it, and the pump then runs from those files
# rather than the frozen ones; `console provision` puts keys bound to the chip's unique
# id on it; then the console's everyday commands, and `--emu` itself.
import json
import os
import subprocess
import sys

import emukit
from emukit import SERVICE_NOTICE, UID, hello, wait_for
from tools.keystore import KeyStore
from tools.link import Link

bench = emukit.bench  # the fixture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tool(*args, timeout=180, stdin=None):
    proc = subprocess.run([sys.executable, "-m"] + list(args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, input=stdin)
    return proc.returncode, proc.stdout, proc.stderr


def console(port, keys, *args, stdin=None):
    # --timeout: a command that writes the state costs the emulated chip tens of millions
    # of cycles, which take the emulator seconds of wall time on a busy host
    return tool("tools.console", *args, "--port", port, "--keys", keys, "--timeout", "60", stdin=stdin)


def test_deploy_and_provision_into_the_emulated_pico_then_the_console_runs_it(bench, tmp_path):
    b = bench(service=True).start(keys=False, attach=False)
    p = b.pico
    p.control("service", held=False)  # the jumper comes off; it is only read at boot
    image = tmp_path / "image"
    rc, out, err = tool("tools.deploy", "--port", p.port, "--build-dir", str(image))
    assert rc == 0, out + err
    # the pump restarted from the deployed files: a power cycle with the jumper on shows them
    wait_for(lambda: p.status()["boots"][-1]["why"] == "watchdog", 30, "the reset after the copy")
    p.relaunch(service=True)
    p.wait_output(SERVICE_NOTICE)
    r = p.repl()
    try:
        listing = json.loads(r.exec(
            "import os, json, app, pump.core\n"
            "def walk(d):\n"
            "    out = {}\n"
            "    for name, kind, *_ in os.ilistdir(d):\n"
            "        path = (d + '/' + name) if d != '/' else '/' + name\n"
            "        if kind == 0x4000:\n"
            "            out.update(walk(path))\n"
            "        else:\n"
            "            out[path[1:]] = os.stat(path)[6]\n"
            "    return out\n"
            "print(json.dumps({'files': walk('/'), 'app': app.__file__, 'core': pump.core.__file__}))\n"))
    finally:
        r.close()
    built = {}
    for top, _, files in os.walk(image):
        for f in files:
            rel = os.path.relpath(os.path.join(top, f), image).replace(os.sep, "/")
            built[rel] = os.path.getsize(os.path.join(top, f))
    on_pico = {k: v for k, v in listing["files"].items() if not k.startswith("data/")}
    assert on_pico == built, set(on_pico) ^ set(built)
    assert listing["app"] == "app.mpy" and listing["core"] == "pump/core.mpy", listing
    # keys bound to this chip's unique id, by the console's own provisioning (mpremote)
    keys = str(tmp_path / "keys")
    p.control("service", held=False)
    rc, out, err = tool("tools.console", "provision", "--port", p.port, "--keys", keys, "--yes", "--json",
                        "--timeout", "60")
    assert rc == 0, out + err
    assert json.loads(out.splitlines()[-1])["dev"] == UID
    link = Link(p.port, keys=KeyStore(keys))
    try:
        pump = hello(link)
        assert pump["dev"] == UID and pump["roles"] == ["clinician", "patient"]
    finally:
        link.close()
    # the console's everyday commands, signed with those keys
    rc, out, err = console(p.port, keys, "clock", "set", "2024-03-04T08:00")
    assert rc == 0 and "Pump clock set to 2024-03-04 08:00." in out, out + err
    rc, out, err = console(p.port, keys, "program", os.path.join(ROOT, "programs", "continuous-500.toml"),
                           "--yes", "--json")
    assert rc == 0, out + err
    rc, out, err = console(p.port, keys, "fill", "--volume-ml", "20", "--conc", "500", "--conc-again", "500",
                           "--yes", "--json")
    assert rc == 0, out + err
    rc, out, err = console(p.port, keys, "status", "--json")
    assert rc == 0, out + err
    st = json.loads(out)
    assert st["drug"] == "baclofen" and st["reservoir_nl"] == 20000000 and st["state"] == "running"
    rc, out, err = console(p.port, keys, "info")
    assert rc == 0 and UID in out, out + err
    log = tmp_path / "log.jsonl"
    rc, out, err = console(p.port, keys, "log", "export", "--format", "jsonl", "-o", str(log))
    assert rc == 0, out + err
    evs = [json.loads(line)["ev"] for line in log.read_text().splitlines()]
    for ev in ("power_up", "clock", "program", "fill"):
        assert ev in evs, (ev, evs)


def test_console_emu_starts_an_emulated_pico_with_keys_and_a_program(tmp_path):
    from emukit import need_emulator
    need_emulator()
    rc, out, err = tool("tools.console", "status", "--emu", "--json", "--flash", str(tmp_path / "flash.bin"),
                        "--program", "baclofen:500:300")  # --emu allows the emulator's pace
    assert rc == 0, out + err
    st = json.loads(out)
    assert st["drug"] == "baclofen" and st["dose_ug_per_day"] == 300 and st["state"] == "running"
    assert st["reservoir_nl"] == 20000000 and st["clock"] is not None
    with open(str(tmp_path / "flash.bin.uid")) as f:
        dev = f.read().strip()
    rc, out, err = tool("tools.console", "info", "--emu", "--flash", str(tmp_path / "flash.bin"))
    assert rc == 0 and dev in out, out + err
    rc, out, err = tool("tools.console", "status", "--emu", "--fault", "occlusion:1:2")
    assert rc == 2 and "--fault is for --sim" in err, err
