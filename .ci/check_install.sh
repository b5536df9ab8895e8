#!/usr/bin/env bash
# Does the package work when installed, outside the checkout? (Not part of the test run:
# each venv downloads TensorFlow, ~600 MB, from PyPI or pip's cache.)
#
# For each Python and each way of installing keras_elmo, in a fresh venv:
#   wheel     `pip wheel --no-deps` here, then `pip install THE.whl`
#   dir       `pip install .`
#   editable  `pip install -e .`
# then, from a temporary directory outside the checkout:
#   1. `keras-elmo embed in.txt out.hdf5` with no model options writes the vectors of a 3-line file;
#   2. `python -c "import keras_elmo; keras_elmo.ElmoLayer.from_preset('elmo-small-en')"`;
#   3. the shipped model is read from the install (site-packages), or from the
#      repository's saved_models/ for the editable install.
# Nothing is downloaded besides PyPI packages: KERAS_ELMO_OFFLINE=1 and an empty cache.
#
# Usage: .ci/check_install.sh [--modes "wheel dir editable"] [PYTHON ...]
# Default Pythons: pyenv's 3.11 and 3.12. Prints one PASS/FAIL line per check and
# writes them to $RESULTS (default: /tmp/keras_elmo_check_install.txt).
set -uo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
MODES="wheel dir editable"
if [ "${1:-}" = "--modes" ]; then MODES="$2"; shift 2; fi
PYTHONS=("$@")
if [ ${#PYTHONS[@]} -eq 0 ]; then
  PYTHONS=(/root/.pyenv/versions/3.11.7/bin/python3.11 /root/.pyenv/versions/3.12.1/bin/python3.12)
fi
RESULTS="${RESULTS:-/tmp/keras_elmo_check_install.txt}"
WORK="$(mktemp -d /tmp/keras_elmo_install.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
: > "$RESULTS"
status=0

record() {  # record PYTHON MODE CHECK RC
  local verdict=PASS
  [ "$4" -eq 0 ] || { verdict=FAIL; status=1; }
  printf '%s\t%s\t%s\t%s\n' "$verdict" "$1" "$2" "$3" | tee -a "$RESULTS"
}

for py in "${PYTHONS[@]}"; do
  pyver="$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
  for mode in $MODES; do
    venv="$WORK/venv-$pyver-$mode"
    log="$WORK/$pyver-$mode.log"
    "$py" -m venv "$venv" && "$venv/bin/pip" install -q --upgrade pip >"$log" 2>&1
    case "$mode" in
      wheel)
        rm -rf "$WORK/wheel" && mkdir "$WORK/wheel"
        (cd "$REPO" && nice "$venv/bin/pip" wheel --no-deps -q -w "$WORK/wheel" .) >>"$log" 2>&1 \
          && nice "$venv/bin/pip" install -q "$WORK"/wheel/keras_elmo-*.whl >>"$log" 2>&1 ;;
      dir) (cd "$REPO" && nice "$venv/bin/pip" install -q .) >>"$log" 2>&1 ;;
      editable) (cd "$REPO" && nice "$venv/bin/pip" install -q -e .) >>"$log" 2>&1 ;;
    esac
    rc=$?
    record "$pyver" "$mode" "install" $rc
    if [ $rc -ne 0 ]; then tail -20 "$log"; continue; fi

    outside="$WORK/outside-$pyver-$mode"
    mkdir -p "$outside"
    printf 'The cat sat on the mat .\nCall me Ishmael .\nHello !\n' > "$outside/in.txt"
    (
      cd "$outside" || exit 1
      export KERAS_ELMO_OFFLINE=1 KERAS_ELMO_CACHE="$outside/cache" TF_CPP_MIN_LOG_LEVEL=2
      nice "$venv/bin/keras-elmo" embed in.txt out.hdf5 >>"$log" 2>&1 \
        && "$venv/bin/python" - >>"$log" 2>&1 <<'EOF'
import json
import h5py
with h5py.File("out.hdf5", "r") as f:
    index = json.loads(f["sentence_to_index"][0])
    shapes = [f[str(i)].shape for i in range(3)]
assert len(index) == 3, index
assert [s[1] for s in shapes] == [7, 4, 2], shapes
assert all(s[0] == 3 and s[2] == 256 for s in shapes), shapes
print("embed:", shapes)
EOF
    )
    record "$pyver" "$mode" "keras-elmo embed (no model options), 3 lines" $?
    (
      cd "$outside" || exit 1
      export KERAS_ELMO_OFFLINE=1 KERAS_ELMO_CACHE="$outside/cache" TF_CPP_MIN_LOG_LEVEL=2
      nice "$venv/bin/python" -c "import keras_elmo; keras_elmo.ElmoLayer.from_preset('elmo-small-en')" \
        >>"$log" 2>&1
    )
    record "$pyver" "$mode" "from_preset('elmo-small-en')" $?
    (
      cd "$outside" || exit 1
      where="$("$venv/bin/python" -c "from keras_elmo.checkpoints import presets; print(presets.resolve_model('elmo-small-en').files['weights'])" 2>>"$log")"
      echo "shipped weights: $where" >>"$log"
      if [ "$mode" = editable ]; then expect="$REPO/saved_models/"; else expect="$venv/lib/"; fi
      case "$where" in "$expect"*) exit 0 ;; *) echo "expected under $expect" >>"$log"; exit 1 ;; esac
    )
    record "$pyver" "$mode" "shipped model read from the install" $?
    grep -E "^(embed:|shipped weights:|expected)" "$log" | sed 's/^/    /'
    rm -rf "$venv"  # ~1.5 GB each
  done
done
echo "results: $RESULTS"
exit $status
