"""Keras callbacks for biLM training: a per-step loss log, a wall-clock limit, backups."""

import math
import time

import keras
import numpy as np


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


class ChiefBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` for several workers: every worker restores, only the chief saves.

    Keras's callback would have every worker write the same files at once.
    The backup directory must be one that all workers see (a shared disk or
    a bucket). The previous backup is kept (`double_checkpoint`), so a
    worker killed while saving leaves a usable one.
    """

    def __init__(self, backup_dir, chief=True):
        super().__init__(
            backup_dir, save_freq="epoch", delete_checkpoint=False, double_checkpoint=True
        )
        self.chief = chief

    def on_epoch_end(self, epoch, logs=None):
        if self.chief:
            super().on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if self.chief:
            super().on_train_batch_end(batch, logs)
