# Both boards implement the HAL of docs/hal.md: the attributes, the calls with their
# arities, and the config constants the shell and the core rely on. The table in the doc
# is parsed, so the doc and the boards cannot drift apart silently.
import inspect
import os
import re
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FAKES = os.path.join(HERE, "fakes")
if FAKES not in sys.path:
    sys.path.append(FAKES)  # boards.pico needs `machine` and `rp2`; CPython has neither

import machine  # noqa: E402  (the fake)

from boards.fsstorage import FsStorage  # noqa: E402
from boards.stdiolink import NullLink  # noqa: E402

DOC = open(os.path.join(ROOT, "docs", "hal.md")).read()


def _section(title):
    start = DOC.index("## `%s`" % title)
    end = DOC.find("\n## ", start + 1)
    return DOC[start:end if end > 0 else len(DOC)]


def _documented_calls(part):
    # rows like "| `step(n)` | ..." -> {"step": 1}
    calls = {}
    for name, args in re.findall(r"^\| `(\w+)\(([^)]*)\)` \|", _section(part), re.M):
        calls[name] = len([a for a in args.split(",") if a.strip()])
    return calls


def _documented_constants():
    block = DOC[DOC.index("## Config constants"):DOC.index("## `board.stepper`")]
    return re.findall(r"^\| `([A-Z_]+)` \|", block, re.M)


def _sim_board(tmp_path):
    from boards.sim import Board
    return Board(str(tmp_path), NullLink())


def _pico_board(tmp_path):
    from boards.pico import Board
    from boards.pico import config
    machine.world.reset(0)
    return Board(config, link=NullLink(), storage=FsStorage(str(tmp_path)), clock=machine.world.clock)


BOARDS = {"sim": _sim_board, "pico": _pico_board}
PARTS = ["board.stepper", "board.rotor", "board.storage", "board.link", "board.watchdog",
         "board.annunciator"]


def _arity(fn):
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in params if p.default is p.empty]
    return len(required), len(params)


def test_the_doc_lists_what_this_test_checks():
    # guards the parsing itself: an empty table would make every check below vacuous
    assert _documented_calls("board.stepper") == {
        "enable": 1, "direction": 1, "step": 1, "busy": 0, "abort": 0}
    assert "STROKE_NL" in _documented_constants() and "WAIT_MAX_MS" in _documented_constants()


@pytest.mark.parametrize("kind", sorted(BOARDS))
def test_board_has_every_documented_call(kind, tmp_path):
    board = BOARDS[kind](tmp_path)
    assert board.name == kind
    assert 0 <= board.ticks_ms() < (1 << 30)
    assert callable(board.wait)
    for part in PARTS:
        obj = getattr(board, part.split(".")[1])
        for name, nargs in _documented_calls(part).items():
            fn = getattr(obj, name, None)
            assert callable(fn), "%s board: %s.%s missing" % (kind, part, name)
            lo, hi = _arity(fn)
            assert lo <= nargs <= hi, "%s board: %s.%s takes %d..%d args, doc says %d" % (
                kind, part, name, lo, hi, nargs)
    assert isinstance(board.device_id, str) and board.device_id
    assert isinstance(board.pressure.read_raw(), int)
    assert isinstance(board.battery.read_mv(), int)


@pytest.mark.parametrize("kind", sorted(BOARDS))
def test_board_config_defines_every_documented_constant_as_an_int(kind, tmp_path):
    board = BOARDS[kind](tmp_path)
    for name in _documented_constants():
        value = getattr(board.config, name, None)
        assert type(value) is int and value > 0, "%s config: %s = %r" % (kind, name, value)


@pytest.mark.parametrize("kind", sorted(BOARDS))
def test_the_shell_accepts_the_board_config(kind, tmp_path):
    import app
    board = BOARDS[kind](tmp_path)
    cfg = app.pump_config(board.config)
    assert cfg.stroke_nl == board.config.STROKE_NL
    assert cfg.max_nl_per_day <= board.config.MAX_NL_PER_DAY
