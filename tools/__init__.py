"""Host-side tools (CPython 3.11): the simulated Pico's runner, the serial link, the console."""
