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


def header(script, argv, facts):
    """A results file's head: `### script`, then the hardware, `facts` (lines), date and command."""
    import datetime
    import sys

    from bench_elmo import hardware

    command = " ".join(argv if argv is not None else sys.argv[1:])
    return [
        f"### {script}",
        "",
        f"- hardware: {hardware()}",
        *(f"- {fact}" for fact in facts),
        f"- date: {datetime.date.today().isoformat()}; command: "
        f"`python benchmarks/{script}.py {command}`".rstrip(),
    ]
