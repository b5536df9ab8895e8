"""Build the AllenNLP ELMo reference that bench_backends.py compares against.

    python benchmarks/make_allennlp_ref.py --source PATH [--dest DIR]

AllenNLP is archived (its last release pins torch < 1.13 and does not
install on Python 3.11), so the comparison uses its source, not its wheel.
PATH is an AllenNLP checkout or git directory (for example a `git clone
https://github.com/allenai/allennlp`; a bare or mirror git directory is read
at HEAD with `git show`). The script copies AllenNLP's ELMo modules
unchanged into DEST (default `$KERAS_ELMO_SHARED/allennlp_ref`, else
`../shared/allennlp_ref` beside the repository) and writes small shims for
the parts of the package that ELMo imports but does not use for char-id
input (the dataset classes behind `batch_to_ids`, `FromParams`, spaCy in
`common/util.py`):

- copied as they are: modules/elmo.py, elmo_lstm.py, highway.py,
  encoder_base.py, lstm_cell_with_projection.py, scalar_mix.py,
  nn/util.py, common/checks.py;
- copied function by function (AllenNLP's own code, without the rest of
  their module): `common/util.py` (lazy_groups_of, pad_sequence_to_length,
  int_to_device, is_distributed, is_global_primary),
  `nn/initializers.py` (block_orthogonal), the ELMoCharacterMapper of
  `data/token_indexers/elmo_indexer.py`;
- shims: `cached_path` for local files only, `FromParams` as an empty
  class, the data classes as classes that raise when used.

DEST is AllenNLP's code (Apache 2.0) and never part of this repository.
Then `PYTHONPATH=DEST python -c "from allennlp.modules.elmo import Elmo"`.
"""

import argparse
import ast
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

COPIED = (
    "allennlp/modules/elmo.py",
    "allennlp/modules/elmo_lstm.py",
    "allennlp/modules/highway.py",
    "allennlp/modules/encoder_base.py",
    "allennlp/modules/lstm_cell_with_projection.py",
    "allennlp/modules/scalar_mix.py",
    "allennlp/nn/util.py",
    "allennlp/common/checks.py",
    "allennlp/LICENSE",
)

# module -> (AllenNLP file, header of imports, names of top-level defs/classes to take)
EXTRACTED = {
    "allennlp/common/util.py": (
        "allennlp/common/util.py",
        "from itertools import islice\n"
        "from typing import Any, Callable, Iterable, Iterator, List, Sequence, TypeVar, Union\n"
        "import torch\nimport torch.distributed as dist\n\n"
        'A = TypeVar("A")\n',
        (
            "lazy_groups_of",
            "pad_sequence_to_length",
            "int_to_device",
            "is_distributed",
            "is_global_primary",
        ),
    ),
    "allennlp/nn/initializers.py": (
        "allennlp/nn/initializers.py",
        "import itertools\nfrom typing import List\nimport torch\nimport torch.nn.init\n\n"
        "from allennlp.common.checks import ConfigurationError\n",
        ("block_orthogonal",),
    ),
    "allennlp/data/token_indexers/elmo_indexer.py": (
        "allennlp/data/token_indexers/elmo_indexer.py",
        "from typing import Dict, List\n",
        ("_make_bos_eos", "ELMoCharacterMapper"),
    ),
}

_UNUSED = (
    "class {name}:\n"
    "    def __init__(self, *args, **kwargs):\n"
    '        raise NotImplementedError("{name} is not part of the ELMo reference build "\n'
    '                                  "(make_allennlp_ref.py): pass character ids")\n'
)

SHIMS = {
    "allennlp/__init__.py": '"""AllenNLP\'s ELMo modules only, built by keras_elmo\'s make_allennlp_ref.py."""\n',
    "allennlp/modules/__init__.py": "",
    "allennlp/nn/__init__.py": "",
    "allennlp/common/__init__.py": "class FromParams:\n    pass\n\n\nclass Registrable:\n    pass\n",
    "allennlp/common/file_utils.py": (
        "import os\n\n\n"
        "def cached_path(url_or_filename, *args, **kwargs):\n"
        "    path = os.fspath(url_or_filename)\n"
        "    if not os.path.exists(path):\n"
        '        raise FileNotFoundError(f"the reference build reads local files only: {path}")\n'
        "    return path\n"
    ),
    "allennlp/data/__init__.py": "",
    "allennlp/data/instance.py": _UNUSED.format(name="Instance"),
    "allennlp/data/batch.py": _UNUSED.format(name="Batch"),
    "allennlp/data/fields.py": _UNUSED.format(name="TextField"),
    "allennlp/data/vocabulary.py": _UNUSED.format(name="Vocabulary"),
    "allennlp/data/tokenizers/__init__.py": "from allennlp.data.tokenizers.token_class import Token\n",
    "allennlp/data/tokenizers/token_class.py": _UNUSED.format(name="Token"),
    "allennlp/data/token_indexers/__init__.py": "",
}
ELMO_INDEXER_TAIL = "\n\n" + _UNUSED.format(name="ELMoTokenCharactersIndexer")


class _Source:
    """Files of an AllenNLP checkout (a work tree) or of a git directory at HEAD."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.tree = os.path.isfile(os.path.join(self.path, "allennlp", "modules", "elmo.py"))
        if not self.tree:
            probe = subprocess.run(
                ["git", "--git-dir", self.path, "cat-file", "-e", "HEAD:allennlp/modules/elmo.py"],
                capture_output=True,
            )
            if probe.returncode != 0:
                raise SystemExit(
                    f"make_allennlp_ref: {path} is neither an AllenNLP checkout nor its git directory"
                )

    def read(self, rel):
        if rel == "allennlp/LICENSE":
            rel = "LICENSE"
        if self.tree:
            with open(os.path.join(self.path, rel), encoding="utf-8") as f:
                return f.read()
        return subprocess.run(
            ["git", "--git-dir", self.path, "show", f"HEAD:{rel}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def commit(self):
        git = ["git", "-C", self.path] if self.tree else ["git", "--git-dir", self.path]
        out = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"


def _defs(text, names):
    """The source of the named top-level functions and classes of `text`, in their order."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            found[node.name] = "".join(lines[start : node.end_lineno])
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"make_allennlp_ref: not found in the source: {', '.join(missing)}")
    return "\n\n".join(found[n] for n in names)


def build(source, dest):
    src = _Source(source)
    written = {}
    for rel in COPIED:
        written[rel] = src.read(rel)
    for rel, (origin, header, names) in EXTRACTED.items():
        body = _defs(src.read(origin), names)
        text = f'"""From AllenNLP\'s {origin}: {", ".join(names)} only."""\n\n{header}\n\n{body}'
        if rel.endswith("elmo_indexer.py"):
            text += ELMO_INDEXER_TAIL
        written[rel] = text
    written.update(SHIMS)
    for rel, text in written.items():
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    with open(os.path.join(dest, "SOURCE.txt"), "w", encoding="utf-8") as f:
        f.write(
            f"AllenNLP source at commit {src.commit()} ({src.path}),\n"
            "built by keras_elmo benchmarks/make_allennlp_ref.py. Not keras_elmo's code.\n"
        )
    return dest


def default_dest():
    shared = os.environ.get("KERAS_ELMO_SHARED") or os.path.join(
        os.path.dirname(os.path.dirname(HERE)), "shared"
    )
    return os.path.join(shared, "allennlp_ref")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="AllenNLP checkout or git directory")
    parser.add_argument(
        "--dest", default=None, help="output folder (default $KERAS_ELMO_SHARED/allennlp_ref)"
    )
    parser.add_argument(
        "--no-check", action="store_true", help="skip importing the result with this Python"
    )
    args = parser.parse_args(argv)
    dest = os.path.abspath(args.dest or default_dest())
    repo = os.path.dirname(HERE)
    if os.path.commonpath([dest, repo]) == repo:
        raise SystemExit(f"make_allennlp_ref: {dest} is inside the repository; build it outside")
    build(args.source, dest)
    if not args.no_check:
        env = dict(os.environ, PYTHONPATH=dest)
        check = subprocess.run(
            [sys.executable, "-c", "from allennlp.modules.elmo import Elmo"],
            env=env,
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise SystemExit(
                f"make_allennlp_ref: built {dest} but it does not import:\n{check.stderr}"
            )
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
