# Device entry point: pick the board and run the pump. On the Pico this file runs at boot;
# on a host it runs the simulated Pico (see tools/simpico.py).
import sys


def main():
    if sys.platform == "rp2":
        from boards.pico.run import main as run
        run()
    else:
        from boards.sim.run import main as run
        run(sys.argv[1:])


main()
