"""The docs stay true: every ```python block of README.md and docs/*.md runs.

Each page runs as a user would paste it: its python blocks in order, in one
namespace per page, from a fresh directory that holds the repository's
`saved_models/` and `examples/` (so files the code writes land there, not in
the checkout). A block that must not run (it needs a server, say) is fenced
```python-no-run instead; it is still compiled, so it stays valid Python.
Any other fence language must be one of KNOWN_FENCES, so that a block
cannot drop out of the test by a typo such as ```py.
"""

import os
import pathlib
import re
import traceback

import keras
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
RUN, NO_RUN = "python", "python-no-run"
KNOWN_FENCES = {RUN, NO_RUN, "bash", "text", "json", ""}
# An opening fence, its body, the closing fence (fences are not nested).
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
# Paths the pages' code reads, relative to the directory it runs in.
# (`tests`: docs/many-languages.md runs on the tiny EFML fixture models.)
SHARED_PATHS = ("saved_models", "examples", "tests")


def code_blocks(text):
    """[(fence language, code, line of the opening fence)] in page order."""
    return [
        (m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
    ]


def run_page(text, name):
    """Run the page's python blocks in order in one namespace; return it.

    A failing block raises AssertionError naming the page, the block's number
    among the page's python blocks and its line, with the traceback.
    """
    namespace = {"__name__": "__main__"}
    python = [(code, line) for lang, code, line in code_blocks(text) if lang == RUN]
    for number, (code, line) in enumerate(python, start=1):
        where = f"{name}, python block {number} (line {line})"
        try:
            exec(compile(code, where, "exec"), namespace)
        except Exception:
            raise AssertionError(f"{where} failed:\n{traceback.format_exc()}") from None
    for lang, code, line in code_blocks(text):
        if lang == NO_RUN:
            compile(code, f"{name}, python-no-run block (line {line})", "exec")
    return namespace


def has_python(page):
    return any(lang == RUN for lang, _, _ in code_blocks(page.read_text(encoding="utf-8")))


@pytest.fixture
def docs_cwd(tmp_path, monkeypatch):
    """A fresh working directory with the repository's model and examples."""
    for name in SHARED_PATHS:
        (tmp_path / name).symlink_to(REPO / name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    # A page may switch the global dtype policy (the mixed-precision example).
    keras.mixed_precision.set_dtype_policy("float32")


@pytest.mark.parametrize(
    "page", [p for p in PAGES if has_python(p)], ids=lambda p: p.relative_to(REPO).as_posix()
)
def test_python_blocks_run(page, docs_cwd):
    text = page.read_text(encoding="utf-8")
    # The Beam extra is part of the test install (.ci/run); as in test_beam.py,
    # only KERAS_ELMO_NO_BEAM=1 leaves it out, visibly, never silently.
    if os.environ.get("KERAS_ELMO_NO_BEAM") == "1" and "integrations import beam" in text:
        pytest.skip("KERAS_ELMO_NO_BEAM=1: Apache Beam left out on purpose")
    run_page(text, page.relative_to(REPO).as_posix())


def test_readme_quick_start_has_the_python_blocks():
    """The README's python is its quick start (the test above runs it)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Quick start")
    end = text.index("\n## ", start + 1)
    lines = [line for lang, _, line in code_blocks(text) if lang == RUN]
    assert lines, "README.md has no python block"
    first, last = text.count("\n", 0, start) + 1, text.count("\n", 0, end) + 1
    assert all(first < line < last for line in lines), lines


def readme_commands():
    """The bash blocks of the README's "Two commands" section, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Two commands")
    section = text[start : text.index("\n## ", start + 1)]
    return [code.strip() for lang, code, _ in code_blocks(section) if lang == "bash"]


def test_readme_test_command_is_what_ci_runs():
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    script = re.sub(r"\\\n\s*", "", script)  # join continued lines
    ci = [line.strip() for line in script.splitlines() if "pytest" in line]
    assert len(ci) == 1, ci
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert " ".join(commands[1].split()) == " ".join(ci[0].split())


def test_readme_main_job_writes_the_vectors(docs_cwd):
    """The README's first command, after its install: `keras-elmo embed ...`
    through the CLI's entry point, checked against the input file itself."""
    import h5py

    from keras_elmo.cli import main

    install, _, embed = readme_commands()[0].partition(" && .venv/bin/keras-elmo ")
    assert install.endswith("pip install -e ."), install
    argv = embed.split()
    assert argv[0] == "embed" and "--all" in argv, argv
    assert main(argv) == 0
    lines = (docs_cwd / argv[1]).read_text(encoding="utf-8").splitlines()
    with h5py.File(docs_cwd / argv[2], "r") as f:
        assert sorted(f) == sorted([str(i) for i in range(len(lines))] + ["sentence_to_index"])
        for i, line in enumerate(lines):
            # 3 layers of the shipped model (2 LSTM layers + tokens), 2 x 128 values.
            assert f[str(i)].shape == (3, len(line.split()), 256)
            assert abs(f[str(i)][...]).sum() > 0


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_fences_are_known(page):
    text = page.read_text(encoding="utf-8")
    unknown = [(lang, line) for lang, _, line in code_blocks(text) if lang not in KNOWN_FENCES]
    assert not unknown, f"{page.name}: fence languages not in {sorted(KNOWN_FENCES)}: {unknown}"
    assert text.count("\n```") % 2 == 0, f"{page.name}: an unclosed code fence"


def heading_anchors(text):
    """GitHub's anchors for the page's headings (outside code blocks)."""
    text = FENCE.sub("", text)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(page):
    """Every relative link points at a file of the repository, and every
    #anchor at a heading of its page."""
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", text)):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked (no network in tests)
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and anchor not in heading_anchors(linked.read_text(encoding="utf-8")):
            broken.append(target)
    assert not broken, f"{page.name}: links that do not resolve: {broken}"


def test_layout_page_names_every_module():
    """docs/layout.md lists each module of the package (by file name)."""
    text = (REPO / "docs" / "layout.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s+(\w+\.py)\b", text, flags=re.M))
    modules = {p.name for p in (REPO / "keras_elmo").rglob("*.py")}
    assert not modules - listed, f"docs/layout.md does not name {sorted(modules - listed)}"


def test_a_broken_block_fails_with_page_and_block_number():
    page = (
        "Text.\n\n```python\nx = 2\n```\n\n```bash\nfalse\n```\n\n"
        "```python\nassert x == 2\ny = x / 0\n```\n"
    )
    with pytest.raises(AssertionError) as err:
        run_page(page, "docs/broken.md")
    message = str(err.value)
    assert "docs/broken.md, python block 2 (line 11) failed" in message
    assert "ZeroDivisionError" in message


def test_blocks_share_one_namespace_in_order():
    page = (
        "```python\nx = [1]\n```\n```python-no-run\nx.append(9)\n```\n```python\nx.append(2)\n```\n"
    )
    assert run_page(page, "p.md")["x"] == [1, 2]
    with pytest.raises(SyntaxError):
        run_page("```python-no-run\ndef broken(:\n```\n", "p.md")
