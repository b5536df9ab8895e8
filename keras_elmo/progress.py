"""Progress bars for long jobs (embedding a file, downloading a model), drawn by tqdm.

On a terminal: one bar redrawn in place, with the rate and the time left.
Into a file or a pipe (a log, CI): plain ASCII lines, one when the job
starts, then at most one every 30 s, and one when it ends, instead of tqdm's
carriage-return redraws, which a log would keep as one endless line.
The rule: the `keras-elmo` command line shows them (unless `--quiet`);
library calls (`embed_file`, downloads, `ElmoLayer.from_preset`, ...) show
nothing unless given `progress=True`.
"""

import contextlib
import io
import sys

# Seconds between redraws: on a terminal, and in a log.
TERMINAL_INTERVAL = 0.5
LOG_INTERVAL = 30.0


class _Lines:
    """A text stream that writes each of tqdm's redraws as a whole line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        # tqdm writes "\r" + bar (+ blanks over a longer previous bar).
        for part in text.split("\r"):
            part = part.rstrip()
            if part:
                self.stream.write(part + "\n")

    def flush(self):
        self.stream.flush()


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


@contextlib.contextmanager
def progress_bar(total, desc, *, unit="it", enabled=True, stream=None, **options):
    """A tqdm bar on `stream` (default: stderr) as a context manager; `.update(n)` moves it.

    `enabled=False` gives a bar that draws nothing (and costs nothing).
    Extra keyword arguments go to tqdm (`initial`, `unit_scale`, ...).
    """
    from tqdm import tqdm

    stream = sys.stderr if stream is None else stream
    if stream is None:  # Python started without a stderr: nowhere to draw
        enabled, stream = False, io.StringIO()
    terminal = _is_terminal(stream)
    settings = {
        "total": total,
        "desc": desc,
        "unit": unit,
        "disable": not enabled,
        "file": stream if terminal else _Lines(stream),
        # Block characters are for terminals; a log gets #.
        "ascii": None if terminal else True,
        "mininterval": TERMINAL_INTERVAL if terminal else LOG_INTERVAL,
    }
    with tqdm(**{**settings, **options}) as bar:
        yield bar
