"""The docs stay true: every ```python block of README.md and docs/*.md runs.

Each page runs as a user would paste it: its python blocks in order, in one
namespace per page, from a fresh directory that holds the repository's
`saved_models/` and `examples/` (so files the code writes land there, not in
the checkout). A block that must not run (it needs a server, say) is fenced
```python-no-run instead and says why in its first line, a comment the
reader sees; it is still compiled, so it stays valid Python. Each block
imports the modules and names it uses, so that a reader can copy one block
(its variables may come from the blocks before it). Any other fence
language must be one of KNOWN_FENCES, so that a block cannot drop out of the
test by a typo such as ```py.

What a block's comments say it gives is checked too: a statement whose
comment starts with a shape, `x = f()  # (2, 4, 256), ...` or
`print(x.shape)  # (2, 4, 256)`, or with a dtype, `print(y.dtype)  # float16`,
must give that (the shape of the assigned value or of the printed / bare
expression, or its dtype). See `stated_outputs`.
"""

import ast
import io
import logging
import os
import pathlib
import re
import subprocess
import sys
import tokenize
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


# A comment that states a statement's output: a shape "(2, 4, 256)" or a dtype.
STATED_SHAPE = re.compile(r"#\s*\((\d+(?:,\s*\d+)*)\)")
STATED_DTYPE = re.compile(r"#\s*(float16|bfloat16|float32|float64|int32|int64|string|bool)\b")
CHECK = "__stated_output__"


def stated_outputs(code):
    """{line: ("shape", (2, 4, 256)) or ("dtype", "float16")} for the lines
    of `code` whose comment starts with a stated output."""
    stated = {}
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type != tokenize.COMMENT:
            continue
        if shape := STATED_SHAPE.match(token.string):
            stated[token.start[0]] = ("shape", tuple(int(d) for d in shape[1].split(",")))
        elif dtype := STATED_DTYPE.match(token.string):
            stated[token.start[0]] = ("dtype", dtype[1])
    return stated


def check_stated(value, kind, expected, where):
    """The value a comment speaks of, checked against what it states."""
    if kind == "shape":
        got = tuple(int(d) for d in getattr(value, "shape", value))
    else:
        dtype = getattr(value, "dtype", value)
        got = getattr(dtype, "name", str(dtype))
    if got != expected:
        raise AssertionError(f"{where}: the comment states {kind} {expected}, the code gives {got}")
    return value


def with_checks(code, where):
    """`code` parsed, each statement with a stated output wrapped in a check:
    (module AST, the number of checks). The subject is the assigned value, a
    bare expression, or the first argument of a print(); a stated output on
    any other statement is an error (it would go unchecked)."""
    tree = ast.parse(code)
    stated = stated_outputs(code)
    checked = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign | ast.AnnAssign | ast.Expr):
            continue
        if node.end_lineno not in stated or node.lineno != node.end_lineno:
            continue
        kind, expected = stated[node.end_lineno]
        holder, field = node, "value"
        call = node.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
            if call.func.id == "print" and call.args:
                holder, field = call.args, 0
        subject = holder[field] if isinstance(holder, list) else getattr(holder, field)
        line = f"{where}, line {node.lineno} of the block"
        check = ast.Call(
            ast.Name(CHECK, ast.Load()),
            [subject, ast.Constant(kind), ast.Constant(expected), ast.Constant(line)],
            [],
        )
        if isinstance(holder, list):
            holder[field] = check
        else:
            setattr(holder, field, check)
        checked.add(node.end_lineno)
    if set(stated) - checked:
        raise AssertionError(
            f"{where}: stated outputs on lines {sorted(set(stated) - checked)} of the block "
            "are not on a one-line assignment, expression or print(): they would go unchecked"
        )
    return ast.fix_missing_locations(tree), len(checked)


def imported_names(tree):
    """The names a block's import statements bind."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.asname or alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def run_page(text, name):
    """Run the page's python blocks in order in one namespace; return it
    (its "__checks__": how many stated outputs were checked).

    A failing block raises AssertionError naming the page, the block's number
    among the page's python blocks and its line, with the traceback.
    """
    namespace = {"__name__": "__main__", CHECK: check_stated, "__checks__": 0}
    python = [(code, line) for lang, code, line in code_blocks(text) if lang == RUN]
    imported = set()  # by the page's earlier blocks
    for number, (code, line) in enumerate(python, start=1):
        where = f"{name}, python block {number} (line {line})"
        tree = ast.parse(code)
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        own = imported_names(tree)
        if (used & imported) - own:
            # A reader may copy one block: it imports what it uses (its
            # variables may come from the blocks before it).
            raise AssertionError(
                f"{where} uses {sorted((used & imported) - own)} without importing them"
            )
        imported |= own
        tree, checks = with_checks(code, where)
        namespace["__checks__"] += checks
        try:
            exec(compile(tree, where, "exec"), namespace)
        except Exception:
            raise AssertionError(f"{where} failed:\n{traceback.format_exc()}") from None
    for lang, code, line in code_blocks(text):
        if lang == NO_RUN:
            where = f"{name}, python-no-run block (line {line})"
            compile(code, where, "exec")
            if not code.startswith("# "):
                raise AssertionError(f"{where}: its first line must be a comment saying why")
    return namespace


def has_python(page):
    return any(lang == RUN for lang, _, _ in code_blocks(page.read_text(encoding="utf-8")))


@pytest.fixture
def docs_cwd(tmp_path, monkeypatch):
    """A fresh working directory with the repository's model and examples."""
    for name in SHARED_PATHS:
        (tmp_path / name).symlink_to(REPO / name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    environ, tf_logger = dict(os.environ), logging.getLogger("tensorflow")
    level = tf_logger.level
    yield tmp_path
    # A page may switch the global dtype policy (the mixed-precision example),
    # set environment variables and log levels (docs/keras.md's quiet start).
    keras.mixed_precision.set_dtype_policy("float32")
    os.environ.clear()
    os.environ.update(environ)
    tf_logger.setLevel(level)


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
    """The README's python is its quick start (the test above runs it and
    checks the shapes its comments state)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Quick start")
    end = text.index("\n## ", start + 1)
    lines = [line for lang, _, line in code_blocks(text) if lang == RUN]
    assert lines, "README.md has no python block"
    first, last = text.count("\n", 0, start) + 1, text.count("\n", 0, end) + 1
    assert all(first < line < last for line in lines), lines
    # Its comments state the outputs' shapes, and test_python_blocks_run checks them.
    checks = sum(
        with_checks(code, "README.md")[1] for lang, code, _ in code_blocks(text) if lang == RUN
    )
    assert checks >= 4, f"README's quick start states {checks} checked outputs"


def section_blocks(text, heading, lang=RUN):
    """The code of the `lang` blocks under `heading` (up to the next heading
    of the same level)."""
    start = text.index(f"\n{heading}\n")
    level = heading.split()[0]
    end = text.find(f"\n{level} ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    return [code for fence, code, _ in code_blocks(section) if fence == lang]


@pytest.mark.slow
def test_the_quiet_start_recipe_leaves_stderr_empty(docs_cwd):
    """docs/keras.md's recipe, then the README's quick start, in a fresh
    process without TF_CPP_MIN_LOG_LEVEL: nothing at all on stderr (without
    the recipe TensorFlow writes several lines there)."""
    keras_page = (REPO / "docs" / "keras.md").read_text(encoding="utf-8")
    (recipe,) = section_blocks(keras_page, "## Quiet start-up: TensorFlow's log lines")
    (quick_start,) = section_blocks(
        (REPO / "README.md").read_text(encoding="utf-8"), "## Quick start"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    for script, quiet in ((recipe + quick_start, True), (quick_start, False)):
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip(), "the quick start printed nothing"
        if quiet:
            assert proc.stderr == "", proc.stderr
        else:  # without the recipe there are lines to hide, or the test shows nothing
            assert proc.stderr.strip(), "TensorFlow wrote nothing to stderr without the recipe"


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


def broken_links(page, text):
    """The relative links of `text` (the page at path `page`) that do not
    point at a file of the repository, or whose #anchor is no heading of
    the page it names."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", text)):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked (no network in tests)
        path, _, anchor = target.partition("#")
        if not path:  # an anchor of this page
            if anchor not in heading_anchors(text):
                broken.append(target)
            continue
        linked = (page.parent / path).resolve()
        if not linked.exists():
            broken.append(target)
        elif anchor and (
            linked.suffix != ".md"
            or anchor not in heading_anchors(linked.read_text(encoding="utf-8"))
        ):
            broken.append(target)
    return broken


# The pages whose links are checked: the docs, and the benchmarks' log that
# the docs link into.
LINKED_PAGES = PAGES + [REPO / "benchmarks" / "README.md"]


@pytest.mark.parametrize("page", LINKED_PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(page):
    """Every relative link points at a file of the repository, and every
    #anchor at a heading of its page."""
    broken = broken_links(page, page.read_text(encoding="utf-8"))
    assert not broken, f"{page.name}: links that do not resolve: {broken}"


def test_a_broken_link_or_anchor_is_found():
    page = REPO / "docs" / "p.md"
    text = (
        "[a](serving.md#signatures) [b](serving.md#no-such-heading) [c](missing.md) "
        "[d](../README.md#what-is-where) [e](#here) [f](#not-here)\n"
        "[g](https://example.com/x) [h](../pyproject.toml#x)\n\n## Here\n"
    )
    assert broken_links(page, text) == [
        "serving.md#no-such-heading",
        "missing.md",
        "#not-here",
        "../pyproject.toml#x",
    ]


# Facts with one home: a figure of the fact written anywhere else in the
# README, the docs, the benchmarks' log or the package (docstrings, --help)
# would drift from it. Elsewhere, one line that links the home.
FACT_HOMES = {
    # The lower-precision path's error (matmul_dtype): "~0.2-0.4% relative".
    "the lower-precision error": (
        re.compile(r"\d(?:\.\d+)?(?:-\d(?:\.\d+)?)?%%?\s+(?:relative|error)"),
        "docs/performance.md",
    ),
}
FACT_PLACES = LINKED_PAGES + sorted((REPO / "keras_elmo").rglob("*.py"))


@pytest.mark.parametrize("fact", sorted(FACT_HOMES))
def test_a_fact_is_written_on_its_home_page_only(fact):
    pattern, home = FACT_HOMES[fact]
    assert pattern.search((REPO / home).read_text(encoding="utf-8")), f"{home} lost {fact}"
    elsewhere = [
        f"{path.relative_to(REPO)}: {match[0]!r}"
        for path in FACT_PLACES
        if path != REPO / home
        for match in pattern.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not elsewhere, f"{fact} is written outside {home} (link it instead): {elsewhere}"


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
        "```python\nx = [1]\n```\n```python-no-run\n# Not run.\nx.append(9)\n```\n"
        "```python\nx.append(2)\n```\n"
    )
    assert run_page(page, "p.md")["x"] == [1, 2]
    with pytest.raises(SyntaxError):
        run_page("```python-no-run\ndef broken(:\n```\n", "p.md")


def test_stated_outputs_are_checked():
    page = (
        "```python\nimport numpy as np\n\nx = np.zeros((2, 3))  # (2, 3), zeros\n"
        "print(x.shape)  # (2, 3)\nx.astype('float16')  # float16\n```\n"
    )
    assert run_page(page, "p.md")["__checks__"] == 3
    for wrong in ("x = np.zeros((2, 3))  # (2, 4)", "print(np.zeros(2).dtype)  # float16"):
        with pytest.raises(AssertionError, match="the comment states"):
            run_page(f"```python\nimport numpy as np\n{wrong}\n```\n", "p.md")
    # A stated output the test cannot check is an error, not a silent pass.
    with pytest.raises(AssertionError, match="would go unchecked"):
        run_page("```python\n# (2, 3)\nx = 1\n```\n", "p.md")


def test_a_no_run_block_says_why():
    with pytest.raises(AssertionError, match="first line must be a comment"):
        run_page("```python-no-run\nimport grpc\n```\n", "p.md")
    run_page("```python-no-run\n# Needs a server.\nimport grpc\n```\n", "p.md")


def test_a_block_imports_what_it_uses():
    page = "```python\nimport json\n```\n```python\nx = json.dumps(1)\n```\n"
    with pytest.raises(AssertionError, match=r"python block 2 \(line 4\) uses \['json'\]"):
        run_page(page, "p.md")
    run_page(page.replace("```python\nx =", "```python\nimport json\n\nx ="), "p.md")
