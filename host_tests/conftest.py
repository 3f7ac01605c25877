# Puts the firmware and the boards on the path exactly as they sit on the Pico's flash.
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (os.path.join(ROOT, "firmware"), ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)
sys.path.insert(0, os.path.join(ROOT, "host_tests", "portable"))

from hypothesis import settings  # noqa: E402

# A failing property prints its example and the blob that replays it.
settings.register_profile("default", deadline=None, print_blob=True)
settings.load_profile("default")
