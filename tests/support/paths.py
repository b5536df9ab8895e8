"""Where the checkout and the tests are (tests run from a checkout; nothing beside it)."""

import pathlib

TESTS = pathlib.Path(__file__).resolve().parent.parent
REPO = TESTS.parent
