# The firmware frozen into the MicroPython image for the Pico (`make firmware`): the pump's
# bytecode runs from flash instead of RAM, and a freshly flashed Pico boots straight into
# the pump (the frozen main.py). Modules copied onto the Pico's filesystem with
# `make deploy` come first on sys.path, so they override these during development.
# MicroPython's manifest format: docs/reference/manifest.rst in its tree.

# the port's own frozen modules (_boot.py mounts and formats the filesystem, rp2, asyncio...)
include("$(PORT_DIR)/boards/manifest.py")

# from micropython-lib (bundled with the MicroPython sources): HMAC for the command keys
require("hmac")

module("main.py", base_path="firmware")
module("app.py", base_path="firmware")
package("pump", base_path="firmware")
# the boards the Pico runs; the simulated board (boards/sim) stays on the host
package("boards", files=["__init__.py", "fsstorage.py", "stdiolink.py"])
package("boards/pico", base_path=".")
