"""The package layering: data flows one way, no module imports back up.

text -> char ids -> (checkpoint files ->) token vectors -> biLSTM -> mix ->
ElmoLayer -> (training | jobs | serving | integrations) -> CLI. Each subpackage may
import only from the subpackages before it, and inside a subpackage a module
only from the modules before it.
"""

import ast
import pathlib

import keras_elmo

# (subpackage, its modules in order); "" is the package root.
ORDER = [
    # registration imports every module that registers a Keras object by name
    # (importlib, when called), none at import: any module that loads a
    # .keras file (ElmoLayer.from_source, the export, Beam) may call it.
    ("", ["version", "errors", "registration", "progress", "cpu", "options", "limits"]),
    ("text", ["characters", "tokenization", "tokenizer"]),
    (
        "checkpoints",
        [
            "original",
            "torch_pickle",
            "efml",
            "download",
            "preset_catalog",
            "presets",
            "model_source",
        ],
    ),
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
    ("jobs", ["reader", "output", "parts", "embed_file"]),
    ("serving", ["export"]),
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


def test_tests_do_not_import_each_other():
    """Shared test code lives in conftest.py and tests/support/, not in a test module
    (subprocess scripts written inside a test are read too)."""
    tests = pathlib.Path(__file__).parent
    offenders = []
    for path in sorted(tests.glob("test_*.py")):
        text = path.read_text()
        sources = [text] + [
            node.value
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
        for source in sources:
            try:
                tree = ast.parse(source)
            except (SyntaxError, ValueError):  # not code (prose, bytes, surrogates)
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("test_"):
                    offenders.append((path.name, node.module))
                elif isinstance(node, ast.Import):
                    offenders += [
                        (path.name, a.name) for a in node.names if a.name.startswith("test_")
                    ]
    assert offenders == []
