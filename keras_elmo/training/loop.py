"""The training loop: optimizer, resumable `fit` over text files."""

import json
import os
import time

import keras

from keras_elmo.training import data as data_lib
from keras_elmo.training.callbacks import BatchLog


def make_optimizer(name="adam", learning_rate=1e-3, clipnorm=5.0):
    """Adam or Adagrad with global gradient-norm clipping."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm)
    if name == "adagrad":
        return keras.optimizers.Adagrad(
            learning_rate, initial_accumulator_value=1.0, global_clipnorm=clipnorm
        )
    raise ValueError(f"optimizer must be 'adam' or 'adagrad', got {name!r}.")


def backup_epoch(backup_dir):
    """The epoch BackupAndRestore will resume from (0 when there is no backup)."""
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f).get("epoch", 0))


def train(
    model,
    train_files,
    vocab,
    batch_size=32,
    steps_per_epoch=100,
    epochs=1,
    checkpoint_dir=None,
    max_len=50,
    shuffle_buffer=10000,
    data_seed=0,
    optimizer=None,
    callbacks=(),
    verbose=0,
):
    """Fit `model` on tokenized text files, resumable through `checkpoint_dir`.

    An epoch is `steps_per_epoch` batches of an endless, deterministic
    stream. With `checkpoint_dir`, `keras.callbacks.BackupAndRestore` saves
    the weights and optimizer state after each epoch; calling `train` again
    with the same directory resumes at the next epoch, skipping the batches
    already used, so the loss curve continues exactly.

    Returns the `BatchLog` callback (per-step losses, tokens seen).
    """
    if model.optimizer is None:
        model.compile(optimizer=optimizer or make_optimizer())
    start_epoch = backup_epoch(checkpoint_dir) if checkpoint_dir else 0
    dataset = data_lib.make_dataset(
        train_files,
        vocab,
        batch_size,
        max_len=max_len,
        shuffle_buffer=shuffle_buffer,
        seed=data_seed,
        repeat=True,
        skip_batches=start_epoch * steps_per_epoch,
        drop_remainder=True,
    )
    log = BatchLog()
    cbs = []
    if checkpoint_dir:
        cbs.append(
            keras.callbacks.BackupAndRestore(
                checkpoint_dir, save_freq="epoch", delete_checkpoint=False
            )
        )
    cbs += [log] + list(callbacks)
    model.fit(
        dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=cbs, verbose=verbose
    )
    return log


def run_training(
    options,
    train_files,
    vocab,
    output_dir,
    *,
    checkpoint_dir=None,
    batch_size=32,
    max_len=50,
    steps_per_epoch=500,
    epochs=10,
    max_minutes=None,
    n_negative=512,
    optimizer="adam",
    learning_rate=1e-3,
    clipnorm=5.0,
    dropout=0.1,
    seed=0,
    shuffle_buffer=10000,
    heldout_files=(),
    log_every=0,
    log_stream=None,
):
    """Train a biLM from scratch (or resume it) and write its model directory.

    The whole `keras-elmo train` job: seeds, builds and compiles a
    `BiLMTrainer`, fits it with `train` (resumable through
    `checkpoint_dir`), evaluates full-softmax perplexity on `heldout_files`
    and writes `output_dir` with `model_dir.export_model`. Returns the
    training-log dict that is also written to `training_log.json`.
    """
    import numpy as np

    from keras_elmo.training import model_dir
    from keras_elmo.training.callbacks import TimeLimit
    from keras_elmo.training.trainer import BiLMTrainer, perplexity

    keras.utils.set_random_seed(seed)
    model = BiLMTrainer(options, len(vocab), n_negative=n_negative, dropout=dropout, seed=seed)
    model.compile(optimizer=make_optimizer(optimizer, learning_rate, clipnorm))
    log = BatchLog(print_every=log_every, stream=log_stream)
    callbacks = [log] + ([TimeLimit(max_minutes)] if max_minutes else [])
    start = time.time()
    train(
        model,
        train_files,
        vocab,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        checkpoint_dir=checkpoint_dir,
        max_len=max_len,
        shuffle_buffer=shuffle_buffer,
        data_seed=seed,
        callbacks=callbacks,
    )
    info = {
        "steps": int(model.optimizer.iterations.numpy()),
        "batch_size": batch_size,
        "this_run_seconds": time.time() - start,
        "this_run_target_tokens": log.tokens,
        "parameters": {
            "encoder": model.token_encoder.count_params(),
            "bilm": model.bilm.count_params(),
            "softmax": model.softmax.count_params(),
        },
        "final_mean_loss_last_100": float(np.mean(log.losses[-100:])) if log.losses else None,
    }
    if heldout_files:
        info["heldout"] = {
            os.path.basename(path): perplexity(
                model, data_lib.make_dataset(path, vocab, 16, max_len=max_len)
            )
            for path in heldout_files
        }
    model_dir.export_model(model, output_dir, vocab=vocab, extra_log=info)
    return info
