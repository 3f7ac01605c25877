# The dosing core: pure therapy logic. No pins, no clock, no I/O, no board imports.
