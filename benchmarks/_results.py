"""The tail every benchmark shares: its markdown table printed and written to results/."""

import os


def write_table(lines, path):
    """Join `lines` into a markdown text, print it, write it to `path`; returns the text."""
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return text
