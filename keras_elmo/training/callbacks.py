"""Keras callbacks for biLM training: a per-step loss log, a wall-clock limit, checkpoints."""

import math
import time

import keras
import numpy as np

from keras_elmo.training import checkpoint


class BatchLog(keras.callbacks.Callback):
    """Keeps every step's `batch_loss` and counts the target tokens seen."""

    def __init__(self, print_every=0, stream=None):
        super().__init__()
        self.losses = []
        self.tokens = 0
        self.print_every = print_every
        self.stream = stream
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.losses.append(float(logs.get("batch_loss", np.nan)))
        self.tokens += int(logs.get("batch_tokens", 0))
        if self.print_every and len(self.losses) % self.print_every == 0 and self.stream:
            elapsed = time.time() - self.start
            recent = np.mean(self.losses[-self.print_every :])
            step = int(self.model.optimizer.iterations.numpy())
            self.stream.write(
                f"step {step} loss {recent:.4f} ppl~{math.exp(min(recent, 50)):.1f} "
                f"tokens {self.tokens} tok/s {self.tokens / max(elapsed, 1e-9):.0f} "
                f"elapsed {elapsed / 60:.1f} min\n"
            )
            self.stream.flush()


class TimeLimit(keras.callbacks.Callback):
    """Stops training after `minutes` of wall clock (checked after each step)."""

    def __init__(self, minutes):
        super().__init__()
        self.seconds = minutes * 60.0
        self.start = None

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if time.time() - self.start > self.seconds:
            self.model.stop_training = True


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves a checkpoint after each complete epoch (`checkpoint.save_checkpoint`).

    Only the chief saves (`chief=False` on the other workers); the directory
    must be one all workers see (a shared disk). `previous` is the
    checkpoint the run resumed from, kept as the backup until the next one
    is complete. An epoch cut short (`TimeLimit`) is not saved: a resumed
    run starts again at the last complete epoch, so its batches and steps
    are the ones an uninterrupted run would take.
    """

    def __init__(self, directory, steps_per_epoch, chief=True, previous=None):
        super().__init__()
        self.directory = directory
        self.steps_per_epoch = steps_per_epoch
        self.chief = chief
        self.last = previous
        self.epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = int(self.model.optimizer.iterations.numpy())

    def on_epoch_end(self, epoch, logs=None):
        if not self.chief:
            return
        steps = int(self.model.optimizer.iterations.numpy()) - self.epoch_start
        if steps != self.steps_per_epoch:
            return  # stopped inside the epoch
        self.last = checkpoint.save_checkpoint(
            self.model, self.directory, epoch + 1, self.steps_per_epoch, previous=self.last
        )
