# HAL storage on a filesystem: LittleFS on the Pico, a host directory for the sim.
import os


class FsStorage:
    def __init__(self, root):
        self.root = root

    def _path(self, name):
        return self.root + "/" + name

    def read(self, name):
        try:
            with open(self._path(name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def write(self, name, data):
        # write-new-then-rename: LittleFS (and POSIX) rename is atomic, so a power cut
        # leaves either the old file or the new one, never a torn one.
        tmp = self._path(name + ".new")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, self._path(name))

    def read_at(self, name, offset, size):
        # up to `size` bytes from `offset` (b"" at or past the end; None if absent)
        try:
            with open(self._path(name), "rb") as f:
                f.seek(offset)
                return f.read(size)
        except OSError:
            return None

    def append(self, name, data):
        with open(self._path(name), "ab") as f:
            f.write(data)

    def size(self, name):
        try:
            return os.stat(self._path(name))[6]
        except OSError:
            return -1

    def rename(self, old, new):
        try:
            os.rename(self._path(old), self._path(new))
        except OSError:
            pass

    def remove(self, name):
        try:
            os.remove(self._path(name))
        except OSError:
            pass
