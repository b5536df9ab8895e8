"""`python -m keras_elmo`: the `keras-elmo` command line."""

import sys

from keras_elmo.cli import main

sys.exit(main())
