"""The embed jobs' reader: text files -> numbered sentences, every line checked.

Lines end with \\n, \\r\\n or \\r; a UTF-8 byte-order mark at the start
of the file is dropped; a line is UTF-8 and holds at least one
whitespace-separated token, is at most `MAX_LINE_BYTES` long and holds at
most `limits.MAX_TOKENS_PER_LINE` tokens.
`keras-elmo embed` (`jobs.embed_file`) and `keras-elmo beam-embed`
(`integrations.beam`) read their inputs with it.

`open_input` reads the embed job's input once, up front: it checks every
line, counts them and takes the input's size, modification time and
SHA-256 in the same pass (`check_unchanged` compares them again before the
output is written). An input that is not a regular file (a pipe such as
`/dev/stdin` or `<(...)`, a FIFO, a device) cannot be read twice, so that
pass copies it into a private file, which the job then reads instead.
"""

import contextlib
import hashlib
import os
import re
import stat
import tempfile

from keras_elmo import limits
from keras_elmo.errors import InputError, MissingFileError
from keras_elmo.text import characters

# A line longer than this is not a sentence (and would need gigabytes in the
# model); it also bounds what the reader holds in memory.
MAX_LINE_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"
_NEWLINE = re.compile(rb"\r\n|\r|\n")
_READ_BLOCK = 1 << 16


def iter_lines(stream, where="input", block_size=_READ_BLOCK):
    """Yield the raw lines (bytes, no terminator) of a binary stream.

    A line ends at \\n, \\r\\n or \\r (old Mac files), the last one possibly at
    the end of the stream; a UTF-8 byte-order mark at the very start is
    dropped. A line over MAX_LINE_BYTES is an InputError naming `where`.
    """

    def blocks():
        # The BOM is decided first: a tiny block size may split it.
        head = b""
        while len(head) < len(_BOM):
            block = stream.read(block_size)
            if not block:
                break
            head += block
        yield head[len(_BOM) :] if head.startswith(_BOM) else head
        yield from iter(lambda: stream.read(block_size), b"")

    def checked(line):
        nonlocal number
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise InputError(f"{where}: line {number} is over {MAX_LINE_BYTES} bytes.")
        return line

    pending = b""
    number = 0
    for block in blocks():
        data = pending + block
        # A final \r may be half of a \r\n split across blocks: keep it back.
        cut = len(data) - 1 if data.endswith(b"\r") else len(data)
        lines = _NEWLINE.split(data[:cut])
        pending = lines.pop() + data[cut:]
        for line in lines:
            yield checked(line)
        if len(pending) > MAX_LINE_BYTES + 1:  # + a held-back \r
            checked(pending)
    if pending:
        lines = _NEWLINE.split(pending)
        if lines[-1] == b"":
            lines.pop()  # the file ended with a line terminator
        for line in lines:
            yield checked(line)


def read_sentences(path):
    """Yield (index, tokens) for each line; clear errors for bad lines."""
    with open(path, "rb") as f:
        yield from sentences_from_stream(f, str(path))


def sentences_from_stream(stream, where, max_tokens=limits.MAX_TOKENS_PER_LINE):
    """`read_sentences` on an open binary stream; `where` names it in errors.

    A line of more than `max_tokens` tokens (None: no limit) is an InputError.
    """
    for index, raw in enumerate(iter_lines(stream, where=where)):
        line = characters.decode_utf8(raw, f"{where}: line {index + 1}")
        tokens = line.split()
        if not tokens:
            raise InputError(
                f"{where}: line {index + 1} is empty; every line must hold a sentence."
            )
        limits.check_line_tokens(len(tokens), f"{where}: line {index + 1}", max_tokens)
        yield index, tokens


def is_regular_file(path):
    """Whether `path` is (or links to) a regular file, which can be read twice."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def check_input_file(input_file):
    """Refuse an input that is missing, a folder or unreadable (cheap: opens it only).

    A pipe, FIFO or device is not opened here: opening and closing a FIFO
    can end its writer, and its bytes are read once, by `open_input`.
    """
    if not os.path.exists(input_file):
        raise MissingFileError(f"input file not found: {input_file}")
    if os.path.isdir(input_file):
        raise InputError(f"input {input_file} is a directory; give a text file.")
    if not is_regular_file(input_file):
        if not os.access(input_file, os.R_OK):
            raise InputError(f"cannot read input {input_file}: permission denied.")
        return
    try:
        with open(input_file, "rb"):
            pass
    except OSError as err:
        raise InputError(f"cannot read input {input_file}: {err.strerror}.") from None


class _Tee:
    """A binary stream that hashes, counts and optionally copies what is read from it."""

    def __init__(self, stream, copy=None):
        self.stream = stream
        self.copy = copy
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size=-1):
        block = self.stream.read(size)
        self.digest.update(block)
        self.size += len(block)
        if self.copy is not None:
            self.copy.write(block)
        return block


class InputText:
    """The embed job's input as read once by `open_input`.

    `path`: the file the job reads (the input, or the private copy of a
    stream); `where`: the name the user gave, for messages; `sentences`,
    `size`, `mtime_ns`, `sha256`: what `path` held when it was read.
    """

    def __init__(self, path, where, sentences, size, mtime_ns, sha256, copied):
        self.path = path
        self.where = where
        self.sentences = sentences
        self.size = size
        self.mtime_ns = mtime_ns
        self.sha256 = sha256
        self.copied = copied

    def stamp(self):
        """Size, modification time and digest, as recorded in OUTPUT.partial/job.json."""
        return {"size": self.size, "mtime_ns": self.mtime_ns, "sha256": self.sha256}


def _stamp(st):
    return st.st_size, st.st_mtime_ns


def _input_changed(where):
    return InputError(
        f"input {where} changed during the run (its size, modification time or contents "
        "differ from when it was read); the output is not written. Rerun once it is "
        "stable (--resume keeps the finished batches if it is the same text again)."
    )


def _scan(path, where):
    """Read `path` once: (sentences, size, mtime_ns, sha256); every line checked."""
    try:
        return _scan_lines(path, where, None)
    except OSError as err:
        raise _read_error(where, err) from None


def _read_error(where, err, copy_dir=None):
    reason = os.strerror(err.errno) if err.errno else str(err)
    into = f" into a private copy in {copy_dir}" if copy_dir else ""
    return InputError(f"cannot read input {where}{into}: {reason}.")


def _scan_lines(path, where, copy):
    with open(path, "rb") as f:
        before = os.fstat(f.fileno())
        tee = _Tee(f, copy)
        count = sum(1 for _ in sentences_from_stream(tee, where))
        after = os.fstat(f.fileno())
    if count == 0:
        raise InputError(f"{where}: the input file has no sentences.")
    if copy is None and (_stamp(before) != _stamp(after) or tee.size != after.st_size):
        raise _input_changed(where)
    return count, tee.size, after.st_mtime_ns, tee.digest.hexdigest()


@contextlib.contextmanager
def open_input(input_file, copy_dir):
    """Read `input_file` once (every line checked); yield its `InputText`.

    A regular file is read in place. Anything else (a pipe, `/dev/stdin`,
    `<(...)`, a FIFO, a device) is copied while it is read into a private
    file in `copy_dir` (hidden: `.keras-elmo-input-*.txt`), which is
    removed when the block ends; the job reads the copy.
    """
    where = os.fspath(input_file)
    if is_regular_file(input_file):
        count, size, mtime_ns, sha256 = _scan(input_file, where)
        yield InputText(where, where, count, size, mtime_ns, sha256, copied=False)
        return
    try:
        fd, copy_path = tempfile.mkstemp(dir=copy_dir, prefix=".keras-elmo-input-", suffix=".txt")
    except OSError as err:
        raise _read_error(where, err, copy_dir) from None
    try:
        try:
            with os.fdopen(fd, "wb") as copy:
                count, size, _, sha256 = _scan_lines(input_file, where, copy)
            mtime_ns = os.stat(copy_path).st_mtime_ns
        except OSError as err:
            raise _read_error(where, err, copy_dir) from None
        yield InputText(copy_path, where, count, size, mtime_ns, sha256, copied=True)
    finally:
        with contextlib.suppress(OSError):
            os.remove(copy_path)


def check_unchanged(text):
    """InputError unless `text.path` still has the size, time and SHA-256 `open_input` saw."""
    try:
        with open(text.path, "rb") as f:
            tee = _Tee(f)
            for _ in iter(lambda: tee.read(_READ_BLOCK), b""):
                pass
            st = os.fstat(f.fileno())
    except OSError:
        raise _input_changed(text.where) from None
    if (tee.size, st.st_size, st.st_mtime_ns, tee.digest.hexdigest()) != (
        text.size,
        text.size,
        text.mtime_ns,
        text.sha256,
    ):
        raise _input_changed(text.where)
