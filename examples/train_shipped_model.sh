#!/usr/bin/env bash
# Train the shipped model saved_models/elmo-small-en exactly as it was trained.
# Usage: examples/train_shipped_model.sh [DATA_DIR] [WORK_DIR]
# DATA_DIR: the full corpora (brown/, sotu/, moby-dick/; default
# $KERAS_ELMO_DATA, else ../shared/data); docs/examples.md ("Data") says how
# to get them. WORK_DIR (default ./train_run) receives the splits, the
# vocabulary, the checkpoints and the trained model. Re-running the train
# command with the same WORK_DIR resumes from the last checkpoint
# (atomic checkpoints in WORK_DIR/ckpt, docs/training.md).
set -euo pipefail
DATA=${1:-${KERAS_ELMO_DATA:-../shared/data}}
WORK=${2:-train_run}
for corpus in brown sotu moby-dick; do
    if [ ! -d "$DATA/$corpus" ]; then
        echo "$(basename "$0"): $DATA/$corpus: not found (the full corpora: see 'Data' in docs/examples.md)" >&2
        exit 2
    fi
done
mkdir -p "$WORK"

# 1. Fixed train / held-out splits (Brown: every 10th file held out; SOTU:
#    addresses from 2010 on held out; Moby-Dick: all train) and the vocabulary
#    (tokens seen >= 4 times in the training split: 26,190 entries).
python "$(dirname "$0")/corpora.py" "$DATA" "$WORK/splits"
keras-elmo build-vocab "$WORK/vocab.txt" "$WORK/splits/train-*.txt" --min-count 4

# 2. Train (2 shared CPU cores, stops after 55 minutes of wall clock).
keras-elmo train "$WORK/splits/train-*.txt" --vocab "$WORK/vocab.txt" \
    --output-dir "$WORK/out" --checkpoint-dir "$WORK/ckpt" \
    --lstm-dim 256 --projection-dim 128 --n-layers 2 --char-dim 16 \
    --filters '[[1,32],[2,32],[3,64],[4,128]]' --n-highway 1 \
    --batch-size 128 --max-len 50 --n-negative 512 \
    --optimizer adam --learning-rate 0.003 --clipnorm 5.0 --dropout 0.1 --seed 0 \
    --steps-per-epoch 50 --epochs 1000 --max-minutes 55 --log-every 10 \
    --heldout-files "$WORK/splits/heldout_brown.txt" "$WORK/splits/heldout_sotu.txt"

# 3. Copy the shipped files.
cp "$WORK"/out/{options.json,weights.hdf5,vocab.txt} saved_models/elmo-small-en/

# 4. Evaluate (perplexity vs unigram, POS tagging); numbers go to MODEL_CARD.md.
python examples/evaluate_shipped_model.py --model-dir "$WORK/out" \
    --splits-dir "$WORK/splits" --data-dir "$DATA" --json "$WORK/eval.json"
