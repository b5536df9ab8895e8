"""The training loop: optimizer, resumable `fit` over text files, on one or several workers."""

import json
import os
import time

import keras
import tensorflow as tf

from keras_elmo.errors import InputError, MissingFileError
from keras_elmo.training import checkpoint
from keras_elmo.training import data as data_lib
from keras_elmo.training.callbacks import AtomicCheckpoint, BatchLog


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
    """The epoch `train` resumes from in `backup_dir` (0 when there is no checkpoint).

    The newest complete checkpoint's (`checkpoint.resume_point`): the backup
    one, with a warning, when the current one is missing or damaged.
    """
    record = checkpoint.resume_point(backup_dir)
    return record["epoch"] if record else 0


def _resume(model, checkpoint_dir, steps_per_epoch):
    """Load the newest complete checkpoint into `model`; returns (its epoch, its metadata)."""
    record = checkpoint.resume_point(checkpoint_dir)
    if record is None:
        return 0, None
    saved = record.get("steps_per_epoch")
    if saved is not None and saved != steps_per_epoch:
        raise InputError(
            f"the checkpoint in {checkpoint_dir} was written with {saved} steps per epoch, this "
            f"run has {steps_per_epoch}: resume with the same value (or another checkpoint "
            "directory), or the input stream would not continue where it stopped."
        )
    with model.distribute_strategy.scope():
        checkpoint.load_checkpoint(model, checkpoint_dir, record)
    return record["epoch"], record


def strategy_from_env():
    """A `MultiWorkerMirroredStrategy` when TF_CONFIG names several tasks, else None.

    TF_CONFIG is TensorFlow's standard cluster description, e.g.
    `{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker",
    "index": 0}}`, set differently on each worker. Create the strategy first
    thing in the program, before any other TensorFlow work: it sets up the
    collective-ops server of this process.
    """
    config = os.environ.get("TF_CONFIG")
    if not config:
        return None
    try:
        cluster = json.loads(config).get("cluster", {})
    except (json.JSONDecodeError, AttributeError) as err:
        raise InputError(f"TF_CONFIG is not a JSON object: {err}") from None
    if sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")) <= 1:
        return None
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy=None):
    """True in a single process, and on the task that writes checkpoints and exports.

    The chief is the "chief" task if the cluster has one, else worker 0 (the
    TF_CONFIG convention).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_files(train_files, pipeline_id, n_pipelines):
    """The training files one input pipeline reads: every n-th, from its index.

    The rule of tf.data's auto-sharding by file (file i to worker i mod n),
    applied explicitly so that each worker's stream is its own deterministic
    pipeline (resuming skips the same batches in it).
    """
    if len(train_files) < n_pipelines:
        raise InputError(
            f"{n_pipelines} workers need at least {n_pipelines} training files (each worker reads "
            f"its own files); got {len(train_files)}. Split the corpus into more files."
        )
    return train_files[pipeline_id::n_pipelines]


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
    stream. With `checkpoint_dir`, the weights and optimizer state are saved
    after each complete epoch (`checkpoint.save_checkpoint`: atomic, the
    previous checkpoint kept as a backup); calling `train` again with the
    same directory loads the newest complete checkpoint and resumes at the
    next epoch, skipping the batches already used, so the loss curve and the
    final weights are those of an uninterrupted run.

    Several replicas (the model built and compiled under a
    `tf.distribute` strategy's scope, e.g. `strategy_from_env()`):
    `batch_size` is the global batch, split evenly over the replicas; each
    worker reads its own share of `train_files` (`worker_files`), and only
    the chief writes the checkpoints. The loss of a step is the mean over
    the global batch, as on one device.

    Returns the `BatchLog` callback (per-step losses, tokens seen).
    """
    strategy = model.distribute_strategy
    if model.optimizer is None:
        with strategy.scope():
            model.compile(optimizer=optimizer or make_optimizer())
    start_epoch, resumed = 0, None
    if checkpoint_dir:
        start_epoch, resumed = _resume(model, checkpoint_dir, steps_per_epoch)
    options = dict(
        max_len=max_len,
        shuffle_buffer=shuffle_buffer,
        seed=data_seed,
        repeat=True,
        drop_remainder=True,
    )
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        dataset = data_lib.make_dataset(
            train_files, vocab, batch_size, skip_batches=start_epoch * steps_per_epoch, **options
        )
    else:
        if batch_size % replicas:
            raise InputError(
                f"the global batch size {batch_size} must be a multiple of the {replicas} replicas."
            )
        files = [train_files] if isinstance(train_files, (str, os.PathLike)) else list(train_files)

        def dataset_fn(context):
            share = worker_files(files, context.input_pipeline_id, context.num_input_pipelines)
            # A worker with several local replicas feeds them in turn: one
            # step takes that many of its batches.
            per_step = context.num_replicas_in_sync // context.num_input_pipelines
            return data_lib.make_dataset(
                share,
                vocab,
                context.get_per_replica_batch_size(batch_size),
                skip_batches=start_epoch * steps_per_epoch * per_step,
                **options,
            )

        dataset = strategy.distribute_datasets_from_function(dataset_fn)
    log = BatchLog()
    cbs = []
    if checkpoint_dir:
        chief = is_chief(strategy)
        cbs.append(AtomicCheckpoint(checkpoint_dir, steps_per_epoch, chief=chief, previous=resumed))
    cbs += [log] + list(callbacks)
    try:
        model.fit(
            dataset,
            epochs=epochs,
            initial_epoch=start_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=cbs,
            verbose=verbose,
            # The dataset shuffles itself (seeded blocks); Keras cannot shuffle
            # a tf.data stream and warns when asked to (its default).
            shuffle=False,
        )
    except tf.errors.NotFoundError:
        paths = [train_files] if isinstance(train_files, (str, os.PathLike)) else train_files
        gone = [os.fspath(p) for p in paths if not os.path.isfile(p)]
        if not gone:
            raise
        resume = (
            f"; the checkpoints in {checkpoint_dir} are kept: put it back and run again to resume."
            if checkpoint_dir
            else "."
        )
        raise MissingFileError(
            f"training file {gone[0]} disappeared during training{resume}"
        ) from None
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

    With a TF_CONFIG naming several workers, run the same command on each:
    they train together (`train`), and only the chief evaluates and writes
    `output_dir`.
    """
    import numpy as np

    from keras_elmo.training import model_dir
    from keras_elmo.training.callbacks import TimeLimit
    from keras_elmo.training.trainer import BiLMTrainer, perplexity

    # Several workers when TF_CONFIG says so; first, before any TensorFlow work.
    strategy = strategy_from_env() or tf.distribute.get_strategy()
    with strategy.scope():
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
    if not is_chief(strategy):
        return info  # the chief evaluates and writes the model directory
    if heldout_files:
        info["heldout"] = {
            os.path.basename(path): perplexity(
                model, data_lib.make_dataset(path, vocab, 16, max_len=max_len)
            )
            for path in heldout_files
        }
    model_dir.export_model(model, output_dir, vocab=vocab, extra_log=info)
    return info
