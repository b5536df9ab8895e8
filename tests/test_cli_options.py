"""The command line's shared options: defined once, choices and defaults from the library."""

import pytest

from keras_elmo import cli, options
from keras_elmo.jobs import embed_file, output
from keras_elmo.text import tokenization


def subparser(command, parser=None):
    parser = parser or cli.build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices[command]


def actions(command, parser=None):
    return {a.dest: a for a in subparser(command, parser)._actions}


REQUIRED = {"embed": ["i", "o"], "beam-embed": ["--input", "i", "--output-dir", "o"]}


def layer_flags(command):
    return sorted(a.const for a in subparser(command)._actions if a.dest == "layers")


@pytest.mark.parametrize("command", ["embed", "beam-embed"])
def test_job_options_come_from_the_library(command):
    found = actions(command)
    assert tuple(found["matmul_dtype"].choices) == options.MATMUL_DTYPES
    assert found["batch_size"].default == output.BATCH_SIZE
    assert layer_flags(command) == sorted(output.LAYER_CHOICES)
    parsed = cli.build_parser().parse_args([command] + REQUIRED[command])
    assert parsed.layers == output.DEFAULT_LAYERS


def test_command_specific_defaults():
    assert actions("embed")["matmul_dtype"].default == "float32"
    assert actions("beam-embed")["matmul_dtype"].default is None  # the model's own
    assert actions("embed")["flush_seconds"].default == embed_file.FLUSH_SECONDS
    assert tuple(actions("beam-embed")["format"].choices) == output.BEAM_FORMATS
    for command in ("export", "beam-embed"):
        tokenizer = actions(command)["tokenizer"]
        assert tuple(tokenizer.choices) == tokenization.TOKENIZERS
        assert tokenizer.default == tokenization.DEFAULT_TOKENIZER
        assert "keras_file" in actions(command)


def test_a_new_library_choice_reaches_every_command(monkeypatch):
    monkeypatch.setattr(options, "MATMUL_DTYPES", options.MATMUL_DTYPES + ("float8",))
    monkeypatch.setattr(tokenization, "TOKENIZERS", tokenization.TOKENIZERS + ("spacy",))
    monkeypatch.setattr(output, "LAYER_CHOICES", output.LAYER_CHOICES + ("second",))
    monkeypatch.setitem(cli.LAYER_HELP, "second", "the second layer")
    parser = cli.build_parser()
    for command in ("embed", "beam-embed"):
        assert "float8" in actions(command, parser)["matmul_dtype"].choices
        parsed = cli.build_parser().parse_args([command, "--second"] + REQUIRED[command])
        assert parsed.layers == "second"
    for command in ("export", "beam-embed"):
        assert "spacy" in actions(command, parser)["tokenizer"].choices
