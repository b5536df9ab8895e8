"""The embed jobs' reader: text files -> numbered sentences, every line checked.

Lines end with \\n, \\r\\n or \\r; a UTF-8 byte-order mark at the start
of the file is dropped; a line is UTF-8 and holds at least one
whitespace-separated token, is at most `MAX_LINE_BYTES` long and holds at
most `limits.MAX_TOKENS_PER_LINE` tokens.
`keras-elmo embed` (`jobs.embed_file`) and `keras-elmo beam-embed`
(`integrations.beam`) read their inputs with it.
"""

import os
import re

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


def count_sentences(path):
    """First pass: validate every line and count them (streaming)."""
    count = sum(1 for _ in read_sentences(path))
    if count == 0:
        raise InputError(f"{path}: the input file has no sentences.")
    return count


def check_input_file(input_file):
    """Refuse an input that is missing, a folder or unreadable (cheap: opens it only)."""
    if not os.path.exists(input_file):
        raise MissingFileError(f"input file not found: {input_file}")
    if os.path.isdir(input_file):
        raise InputError(f"input {input_file} is a directory; give a text file.")
    try:
        with open(input_file, "rb"):
            pass
    except OSError as err:
        raise InputError(f"cannot read input {input_file}: {err.strerror}.") from None
