"""The package layering: data flows one way, no module imports back up.

text -> char ids -> (checkpoint files ->) token vectors -> biLSTM -> mix ->
ElmoLayer -> (training | serving | integrations) -> CLI. Each subpackage may
import only from the subpackages before it, and inside a subpackage a module
only from the modules before it.
"""

import ast
import pathlib

import keras_elmo

# (subpackage, its modules in order); "" is the package root.
ORDER = [
    ("", ["version", "errors", "progress", "options", "limits"]),
    ("text", ["characters", "tokenization", "tokenizer"]),
    ("checkpoints", ["original", "torch_pickle", "efml", "download", "preset_catalog", "presets"]),
    (
        "layers",
        [
            "token_encoder",
            "efml_token_encoder",
            "token_cache",
            "lstm",
            "bilm",
            "scalar_mix",
            "elmo_layer",
        ],
    ),
    ("training", ["corpora", "data", "sampler", "trainer", "callbacks", "model_dir", "loop"]),
    # registration imports every module that registers a Keras object, by name
    # (importlib); the export and Beam call it before loading a .keras file.
    ("", ["registration"]),
    ("serving", ["embed_file", "export"]),
    ("integrations", ["beam"]),
    # __main__ is `python -m keras_elmo`, the command line.
    ("", ["cli", "__main__"]),
]
RANK = {}
for _group, (_package, _modules) in enumerate(ORDER):
    for _k, _module in enumerate(_modules):
        RANK[f"{_package}.{_module}".lstrip(".")] = (_group, _k)
PACKAGE = pathlib.Path(keras_elmo.__file__).parent
# Layers that compute; they read no files and know no checkpoint format.
MODEL_CORE = ["token_encoder", "efml_token_encoder", "token_cache", "lstm", "bilm", "scalar_mix"]


def module_name(path):
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def library_modules():
    return [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]


def imports_of(path):
    """keras_elmo modules imported by `path` (anywhere in it), as dotted names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("keras_elmo")
        ):
            base = node.module.split(".")[1:]
            for alias in node.names:
                candidate = ".".join(base + [alias.name])
                names.add(candidate if candidate in RANK else ".".join(base))
        elif isinstance(node, ast.Import):
            names.update(
                ".".join(a.name.split(".")[1:])
                for a in node.names
                if a.name.startswith("keras_elmo.")
            )
    return {name for name in names if name}


def test_every_module_is_placed_in_the_order():
    modules = {module_name(p) for p in library_modules()}
    assert modules <= set(RANK), sorted(modules - set(RANK))


def test_no_module_imports_back_up():
    for path in library_modules():
        here = module_name(path)
        for name in imports_of(path):
            assert name in RANK, f"{here} imports {name}, which is not a placed module"
            assert RANK[name] < RANK[here], f"{here} imports {name}, which comes after it"


def test_model_core_reads_no_files_and_knows_no_checkpoint_format():
    for module in MODEL_CORE:
        path = PACKAGE / "layers" / f"{module}.py"
        imported = imports_of(path)
        assert not [n for n in imported if n.startswith("checkpoints")], (module, imported)


def test_no_private_keras_imports_or_prints():
    for path in library_modules():
        text = path.read_text()
        assert "keras.src" not in text, path
        if module_name(path) != "cli":
            calls = [
                n
                for n in ast.walk(ast.parse(text))
                if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"
            ]
            assert not calls, f"print() in library module {module_name(path)}"


TESTS = pathlib.Path(__file__).parent


def imports_in_tests():
    """(file, imported module) for every test module, every tests/support module
    and the numpy reference, including the scripts a test writes as a string to
    run in a subprocess (a string that parses as code is read too)."""
    found = []
    paths = sorted(TESTS.glob("test_*.py")) + sorted(TESTS.glob("support/*.py"))
    for path in paths + [TESTS / "numpy_reference.py"]:
        text = path.read_text()
        sources = [text] + [
            node.value
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
        name = str(path.relative_to(TESTS))
        for source in sources:
            try:
                tree = ast.parse(source)
            except (SyntaxError, ValueError):  # not code (prose, bytes, surrogates)
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 0:
                    found.append((name, node.module or ""))
                elif isinstance(node, ast.Import):
                    found += [(name, a.name) for a in node.names]
    return found


def test_tests_do_not_import_each_other():
    """Shared test code lives in tests/support/, not in a test module."""
    offenders = [(f, m) for f, m in imports_in_tests() if m.split(".")[0].startswith("test_")]
    assert offenders == []


def test_tests_do_not_import_from_conftest():
    """conftest.py holds pytest's fixtures and set-up only; a helper or constant
    the tests share lives in tests/support/ (pytest imports conftest under its
    own rules: `from conftest import` works by accident of sys.path)."""
    offenders = [(f, m) for f, m in imports_in_tests() if m.split(".")[0] == "conftest"]
    assert offenders == []
    conftest = ast.parse((TESTS / "conftest.py").read_text())
    # What conftest defines at top level: fixtures (and the imports they use).
    defined = [
        node.name
        for node in conftest.body
        if isinstance(node, (ast.FunctionDef, ast.ClassDef))
        and not any(
            "fixture" in ast.unparse(d) or "hookimpl" in ast.unparse(d) for d in node.decorator_list
        )
        and not node.name.startswith("pytest_")
    ]
    constants = [
        target.id
        for node in conftest.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    ]
    assert defined == [] and constants == [], (defined, constants)
