"""Making a finished write durable: fsync of a file or a folder by its path.

The crash-safe writers (the embed job's part store, training checkpoints)
write to a temporary name, sync it, rename it into place and sync the folder,
so that after a crash a name holds either the old bytes or the new, whole.
"""

import os


def fsync_path(path):
    """fsync the file or folder at `path` (opened read-only for it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path):
    """fsync a folder after a rename in it, where the system has folder handles.

    Windows has none; the rename itself is still atomic there."""
    try:
        fsync_path(path)
    except OSError:
        pass
