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
    ("", ["version", "errors", "durable", "registration", "progress", "cpu", "options", "limits"]),
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
            # Text -> char ids (TensorFlow ops), before the model's layers.
            "preprocessor",
            "backend_path",
            "token_encoder",
            "efml_token_encoder",
            "token_cache",
            "lstm",
            "bilm",
            "scalar_mix",
            "elmo_layer",
        ],
    ),
    ("training", ["data", "sampler", "checkpoint", "trainer", "callbacks", "model_dir", "loop"]),
    ("jobs", ["reader", "batching", "output", "parts", "parquet", "embed_file"]),
    ("serving", ["export"]),
    ("integrations", ["beam", "spark", "spark_cli"]),
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


# Calls that touch the file system, by their dotted name as written (`np.load`,
# `tf.io.gfile.exists`) or, for methods (a pathlib.Path's, a zip member's), by
# the method's name on any object.
FILE_CALLS = {
    "open",
    "io.open",
    "h5py.File",
    "json.load",
    "json.dump",
    "pickle.load",
    "pickle.dump",
    "torch.load",
    "keras.utils.get_file",
    "keras.models.load_model",
    "keras.saving.load_model",
    "tf.saved_model.load",
    "tf.saved_model.save",
    "tf.io.read_file",
    "tf.io.write_file",
    "urllib.request.urlopen",
}
FILE_CALL_PREFIXES = ("os.", "shutil.", "glob.", "tempfile.", "tf.io.gfile.", "tf.gfile.")
NUMPY_FILE_FUNCTIONS = {"load", "save", "savez", "savez_compressed", "loadtxt", "savetxt"}
NUMPY_FILE_FUNCTIONS |= {"genfromtxt", "fromfile", "memmap"}
FILE_METHODS = {"read_text", "read_bytes", "write_text", "write_bytes", "open", "iterdir"}
FILE_METHODS |= {"glob", "rglob", "tofile", "mkdir", "unlink", "touch"}
# os functions that only compute with path strings.
OS_PATH_STRINGS = {"os.path.join", "os.path.basename", "os.path.dirname", "os.path.abspath"}
OS_PATH_STRINGS |= {"os.path.splitext", "os.path.normpath", "os.sep", "os.environ.get"}
# Keras's asset hooks: `save_assets(dir_path)` / `load_assets(dir_path)` are
# how a layer keeps state beside its variables in a `.keras` file (the token
# cache's vocabulary, an ELMoForManyLangs lexicon); Keras calls them with a
# directory it made. Inside them a path-taking call may only name a file in
# that directory (`os.path.join(dir_path, ...)`, directly or through a local).
ASSET_HOOKS = {"save_assets", "load_assets"}
PATH_TAKING = {"open", "io.open", "os.path.isfile", "os.path.exists", "h5py.File"}
# Reads of system files, not of model files, named one by one: the bfloat16
# CPU probe reads /proc/cpuinfo (issue 23 moves it out of the LSTM module).
SYSTEM_FILE_READERS = {("lstm", "cpu_bfloat16_units")}


def dotted(node):
    """`a.b.c` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id] + parts[::-1])


def is_file_call(call):
    name = dotted(call.func)
    if name is not None:
        if name in FILE_CALLS:
            return True
        if name.startswith(FILE_CALL_PREFIXES) and name not in OS_PATH_STRINGS:
            return True
        head, _, tail = name.rpartition(".")
        if head in ("np", "numpy") and tail in NUMPY_FILE_FUNCTIONS:
            return True
    return isinstance(call.func, ast.Attribute) and call.func.attr in FILE_METHODS


def file_calls(tree):
    """(enclosing function, call) for every file-system call in a module."""
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
            if isinstance(child, ast.Call) and is_file_call(child):
                found.append((function, child))
            visit(child, inner or function)

    visit(tree, None)
    return found


def in_asset_directory(arg, hook):
    """Whether `arg` is os.path.join(<the hook's directory argument>, ...),
    directly or through one local assignment in the hook."""
    directory = hook.args.args[1].arg  # (self, dir_path)
    if isinstance(arg, ast.Name):
        values = [
            node.value
            for node in ast.walk(hook)
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == arg.id for t in node.targets)
        ]
        return len(values) == 1 and in_asset_directory(values[0], hook)
    return (
        isinstance(arg, ast.Call)
        and dotted(arg.func) == "os.path.join"
        and isinstance(arg.args[0], ast.Name)
        and arg.args[0].id == directory
    )


def test_model_core_knows_no_checkpoint_format():
    for module in MODEL_CORE:
        path = PACKAGE / "layers" / f"{module}.py"
        imported = imports_of(path)
        assert not [n for n in imported if n.startswith("checkpoints")], (module, imported)


def test_model_core_reads_no_files():
    """The model core computes: it opens no file, except that a layer's Keras
    asset hooks write and read their own files in the directory Keras hands
    them, and the named system-file readers (SYSTEM_FILE_READERS)."""
    offenders = []
    for module in MODEL_CORE:
        tree = ast.parse((PACKAGE / "layers" / f"{module}.py").read_text())
        for function, call in file_calls(tree):
            name = function.name if function else "<module>"
            where = f"{module}.{name}:{call.lineno} {ast.unparse(call.func)}"
            if (module, name) in SYSTEM_FILE_READERS:
                continue
            if name in ASSET_HOOKS:
                takes_path = dotted(call.func) in PATH_TAKING
                if not takes_path and dotted(call.func) in ("json.load", "json.dump"):
                    continue  # on the handle opened from the asset directory
                if takes_path and in_asset_directory(call.args[0], function):
                    continue
            offenders.append(where)
    assert offenders == []


def test_the_file_call_check_sees_file_calls():
    """The checker itself, on code that opens files the ways the core must not."""
    source = """
import os, pathlib, h5py
import numpy as np
import tensorflow as tf
def build(self):
    open("w.hdf5")
    h5py.File("w.hdf5")
    pathlib.Path("v.txt").read_text()
    np.load("a.npy")
    tf.io.gfile.GFile("x")
    os.listdir(".")
def load_assets(self, dir_path):
    open("/elsewhere/vocab.json")
    path = os.path.join(dir_path, "vocab.json")
    open(path)
"""
    calls = file_calls(ast.parse(source))
    assert [ast.unparse(c.func) for _, c in calls] == [
        "open",
        "h5py.File",
        "pathlib.Path('v.txt').read_text",
        "np.load",
        "tf.io.gfile.GFile",
        "os.listdir",
        "open",
        "open",
    ]
    hook = calls[-1][0]
    assert [in_asset_directory(c.args[0], hook) for _, c in calls[-2:]] == [False, True]


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
