"""The public docstrings' examples run, and every public object has one.

Every name in `keras_elmo.__all__` (and the sublayers users meet inside an
`ElmoLayer`) must carry a `>>>` example in its own docstring; the doctests
of the modules that define them then run as written (ELLIPSIS,
NORMALIZE_WHITESPACE), from a fresh working directory, so that files an
example writes land there.
"""

import doctest
import importlib
import inspect
import re

import keras
import pytest

import keras_elmo

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# The sublayers a user meets as attributes of an ElmoLayer, by module.
SUBLAYERS = {
    "CharCNNTokenEncoder": "keras_elmo.layers.token_encoder",
    "BidirectionalLM": "keras_elmo.layers.bilm",
    "ProjectedLSTM": "keras_elmo.layers.lstm",
}


def public_object(name):
    if name in SUBLAYERS:
        return getattr(importlib.import_module(SUBLAYERS[name]), name)
    return getattr(keras_elmo, name)


# Every public name (a name added to __all__ is checked with no edit here).
DOCUMENTED = sorted(set(keras_elmo.__all__) - {"__version__"} | set(SUBLAYERS))
MODULES = sorted({public_object(name).__module__ for name in DOCUMENTED})


def examples(obj):
    return doctest.DocTestParser().get_examples(obj.__doc__ or "")


def run_doctests(tests):
    """Run doctest.DocTest objects; return (examples tried, failures, report)."""
    report = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in tests:
        runner.run(test, out=report.append)
    return runner.tries, runner.failures, "".join(report)


def documented_parameters(obj):
    """The parameters an `Args:` section must name: a function's, a class's constructor's."""
    if isinstance(obj, type) and "__init__" not in vars(obj):
        return []  # a constructor inherited from outside (ElmoError's from Exception)
    target = obj.__init__ if isinstance(obj, type) else obj
    params = inspect.signature(target).parameters.values()
    return [
        ("**" if p.kind is p.VAR_KEYWORD else "*" if p.kind is p.VAR_POSITIONAL else "") + p.name
        for p in params
        if p.name != "self"
    ]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_public_object_has_an_example(name):
    obj = public_object(name)
    doc = inspect.cleandoc(obj.__doc__ or "")
    assert examples(obj), f"{name}: its docstring has no >>> example"
    assert "\nExample:\n" in doc, f"{name}: its docstring has no 'Example:' section"
    layer = isinstance(obj, type) and issubclass(obj, keras.layers.Layer)
    sections = (
        ["Call arguments:", "Returns:"] if layer else [] if isinstance(obj, type) else ["Returns:"]
    )
    for section in sections:
        assert f"\n{section}\n" in doc, f"{name}: its docstring has no {section!r} section"
    parameters = documented_parameters(obj)
    if parameters:
        assert "\nArgs:\n" in doc, f"{name}: its docstring has no 'Args:' section"
    for parameter in parameters:
        assert re.search(rf"^    {re.escape(parameter)}:", doc, re.M), (
            f"{name}: 'Args:' does not describe {parameter!r}"
        )


def test_runner_reports_a_wrong_example():
    """The harness fails on a wrong expected output (it cannot pass vacuously)."""
    wrong = doctest.DocTestParser().get_doctest(">>> 1 + 1\n3\n", {}, "wrong", "<test>", 0)
    tries, failures, report = run_doctests([wrong])
    assert (tries, failures) == (1, 1)
    assert "Expected:\n    3\nGot:\n    2" in report


@pytest.mark.parametrize("module", MODULES)
def test_module_doctests_pass(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mod = importlib.import_module(module)
    tests = doctest.DocTestFinder(exclude_empty=True).find(mod, module)
    try:
        tries, failures, report = run_doctests(tests)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert tries > 0, f"{module}: no doctest ran"
    assert failures == 0, f"{module}: {failures} of {tries} examples failed:\n{report}"
