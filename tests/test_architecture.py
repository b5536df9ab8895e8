"""The package layering: data flows one way, no module imports back up."""

import ast
import pathlib

import keras_elmo

# text -> char ids -> token vectors -> biLSTM -> mix -> layer -> (training | export | CLI)
ORDER = [
    "options", "tokenization", "characters", "preprocessing", "data", "token_encoder",
    "token_cache", "lstm", "bilm", "scalar_mix", "conversion", "layer", "training", "embed_file", "export", "cli",
]
PACKAGE = pathlib.Path(keras_elmo.__file__).parent


def imports_of(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_elmo"):
            parts = node.module.split(".")
            names.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("keras_elmo."))
    return names


def test_every_module_is_placed_in_the_order():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules <= set(ORDER), modules - set(ORDER)


def test_no_module_imports_back_up():
    for path in PACKAGE.glob("*.py"):
        if path.stem == "__init__":
            continue
        rank = ORDER.index(path.stem)
        for name in imports_of(path):
            assert ORDER.index(name) < rank, f"{path.stem} imports {name}, which comes after it"


def test_no_private_keras_imports_or_prints():
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert "keras.src" not in text, path
        if path.stem != "cli":
            tree = ast.parse(text)
            calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                     and getattr(n.func, "id", None) == "print"]
            assert not calls, f"print() in library module {path.stem}"
