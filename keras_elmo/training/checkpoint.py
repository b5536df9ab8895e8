"""Training checkpoints that a kill at any moment leaves usable.

A checkpoint directory holds:
- `epoch-000003.weights.h5`: the model's and the optimizer's variables after
  epoch 3 (Keras `save_weights`), one file per kept epoch;
- `training_metadata.json`: the current checkpoint, `{"format": 2, "epoch": 3,
  "batch": 0, "steps": 1500, "steps_per_epoch": 500, "weights":
  "epoch-000003.weights.h5", "size": ..., "sha256": ...}`;
- `training_metadata.json.bkp`: the previous checkpoint, whose weights file
  is kept until a newer checkpoint is complete.

Saving (`save_checkpoint`): the weights go to a temporary name, are synced
to disk and renamed; the previous checkpoint's metadata is written to the
backup name; then the new metadata is written to a temporary name, synced
and renamed LAST: that rename is the commit. Only then are older weights
files and leftover temporaries removed. A kill at any moment therefore
leaves a metadata file that names a complete weights file of the recorded
size and digest: the new pair, or the previous one.

Resuming (`resume_point`): the current metadata if it parses and its weights
file matches, else the backup, with one warning naming what was wrong with
the current one; when files are there but neither is usable, an
`InputError`. A directory written by keras_elmo 0.3 (Keras's
`BackupAndRestore` layout: metadata without a `weights` entry next to
`latest.weights.h5`) is read as it is, without a digest to check.
"""

import json
import os
import re
import shutil
import tempfile
import warnings

from keras_elmo import durable
from keras_elmo.checkpoints.download import file_sha256
from keras_elmo.errors import ElmoError, InputError

METADATA_FILE = "training_metadata.json"
BACKUP_SUFFIX = ".bkp"
FORMAT = 2
LEGACY_WEIGHTS = "latest.weights.h5"
_TMP_PREFIX = ".tmp-"
_WEIGHTS_RE = re.compile(r"epoch-\d{6,}\.weights\.h5")
# The files this module writes: anything else in the directory is left alone.
_OURS_RE = re.compile(r"(epoch-\d{6,}\.weights\.h5|latest\.weights\.h5(\.bkp)?|\.tmp-.*)")
_MAX_METADATA_BYTES = 1 << 16


class CheckpointWriteError(ElmoError, OSError):
    """A checkpoint could not be written (disk full, I/O error); the previous one is intact."""


def weights_name(epoch):
    """The weights file of the checkpoint after `epoch` epochs."""
    return f"epoch-{epoch:06d}.weights.h5"


def _write_json_atomic(path, record):
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f"{_TMP_PREFIX}{os.getpid()}-{os.path.basename(path)}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    durable.fsync_dir(directory)


def _read_record(directory, name, legacy_weights):
    """(record, None) for a usable metadata file, or (None, why it is not)."""
    path = os.path.join(directory, name)
    if not os.path.lexists(path):
        return None, "missing"
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_METADATA_BYTES + 1)
    except OSError as err:
        return None, f"unreadable ({err.strerror or err})"
    if not raw.strip():
        return None, "empty"
    if len(raw) > _MAX_METADATA_BYTES:
        return None, f"larger than {_MAX_METADATA_BYTES} bytes"
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        return None, f"not valid JSON ({str(err)[:80]})"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    epoch = record.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        return None, f"its epoch is {epoch!r:.40}, not a non-negative integer"
    if "weights" not in record:  # keras_elmo 0.3: Keras's BackupAndRestore layout
        if not os.path.isfile(os.path.join(directory, legacy_weights)):
            return None, f"its weights file {legacy_weights} is missing"
        return {"epoch": epoch, "weights": legacy_weights}, None
    weights = record["weights"]
    if not isinstance(weights, str) or not _WEIGHTS_RE.fullmatch(weights):
        return None, f"it names {weights!r:.60} as weights, not a file of this directory"
    weights_path = os.path.join(directory, weights)
    if not os.path.isfile(weights_path):
        return None, f"its weights file {weights} is missing"
    size = os.path.getsize(weights_path)
    if size != record.get("size"):
        return None, f"{weights} has {size} bytes, the metadata says {record.get('size')!r:.20}"
    if file_sha256(weights_path) != record.get("sha256"):
        return None, f"{weights} does not match the digest in the metadata"
    for key in ("steps", "steps_per_epoch"):
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return None, f"its {key} is {value!r:.40}, not a non-negative integer"
    return record, None


def resume_point(directory):
    """The newest complete checkpoint in `directory`: its metadata dict, or None.

    None when there is nothing to resume (no directory, or no metadata file
    and no backup). The current checkpoint when usable; else the backup,
    with one `RuntimeWarning` saying why; `InputError` when neither is.
    The dict has `epoch` and `weights` (a file name in `directory`), and
    `steps` (optimizer steps) and `steps_per_epoch` unless the checkpoint
    predates them (keras_elmo 0.3).
    """
    if not os.path.exists(directory):
        return None
    if not os.path.isdir(directory):
        raise InputError(f"checkpoint directory {directory} is not a directory.")
    current, why = _read_record(directory, METADATA_FILE, LEGACY_WEIGHTS)
    if current is not None:
        return current
    backup_name = METADATA_FILE + BACKUP_SUFFIX
    backup, why_backup = _read_record(directory, backup_name, LEGACY_WEIGHTS + BACKUP_SUFFIX)
    if why == "missing" and why_backup == "missing":
        return None
    if backup is None:
        raise InputError(
            f"no usable checkpoint in {directory}: {METADATA_FILE} is {why}, {backup_name} is "
            f"{why_backup}. Remove the directory to train from the start."
        )
    warnings.warn(
        f"keras_elmo: {os.path.join(directory, METADATA_FILE)} is {why}; resuming from the "
        f"backup checkpoint (epoch {backup['epoch']}).",
        RuntimeWarning,
        stacklevel=2,
    )
    return backup


def save_checkpoint(model, directory, epoch, steps_per_epoch, previous=None):
    """Write the checkpoint after `epoch` epochs; returns its metadata dict.

    `previous` is the metadata of the last complete checkpoint (what
    `resume_point` or the last `save_checkpoint` returned): it becomes the
    backup, and its weights file is kept. See the module docstring for the
    order of the writes.
    """
    try:
        return _save(model, directory, epoch, steps_per_epoch, previous)
    except OSError as err:
        mine = f"{_TMP_PREFIX}{os.getpid()}-"
        for entry in os.listdir(directory) if os.path.isdir(directory) else ():
            if entry.startswith(mine):  # do not leave half a file on a full disk
                try:
                    os.remove(os.path.join(directory, entry))
                except OSError:
                    pass
        raise CheckpointWriteError(
            f"could not write the checkpoint of epoch {epoch} in {directory}: "
            f"{err.strerror or err}; the previous checkpoint there is intact."
        ) from None


def _save(model, directory, epoch, steps_per_epoch, previous):
    os.makedirs(directory, exist_ok=True)
    name = weights_name(epoch)
    final = os.path.join(directory, name)
    tmp = os.path.join(directory, f"{_TMP_PREFIX}{os.getpid()}-{name}")
    model.save_weights(tmp, overwrite=True)
    durable.fsync_path(tmp)
    size, digest = os.path.getsize(tmp), file_sha256(tmp)
    os.replace(tmp, final)
    durable.fsync_dir(directory)
    record = {
        "format": FORMAT,
        "epoch": int(epoch),
        "batch": 0,
        "steps": int(model.optimizer.iterations.numpy()),
        "steps_per_epoch": int(steps_per_epoch),
        "weights": name,
        "size": size,
        "sha256": digest,
    }
    backup_path = os.path.join(directory, METADATA_FILE + BACKUP_SUFFIX)
    keep = {name}
    if previous is not None and previous.get("weights") != name and "sha256" in previous:
        _write_json_atomic(backup_path, previous)
        keep.add(previous["weights"])
    elif os.path.lexists(backup_path):
        os.remove(backup_path)  # it would point at nothing this checkpoint keeps
    _write_json_atomic(os.path.join(directory, METADATA_FILE), record)  # the commit
    for entry in os.listdir(directory):
        if entry not in keep and _OURS_RE.fullmatch(entry):
            try:
                os.remove(os.path.join(directory, entry))
            except OSError:
                pass  # a leftover that cannot go now goes at the next save
    return record


def load_checkpoint(model, directory, record):
    """Restore the model's and the optimizer's variables from a checkpoint of `resume_point`."""
    path = os.path.join(directory, record["weights"])
    with tempfile.TemporaryDirectory(prefix="keras_elmo-") as scratch:
        if not path.endswith(".weights.h5"):  # 0.3's backup, latest.weights.h5.bkp
            copy = os.path.join(scratch, "backup.weights.h5")
            shutil.copyfile(path, copy)
            path = copy
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(path)
        except (ValueError, OSError) as err:
            text = str(err).strip()
            first = text.splitlines()[0][:200] if text else type(err).__name__
            raise InputError(
                f"the checkpoint {os.path.join(directory, record['weights'])} does not fit this "
                f"model ({first}); resume with the same model options, or use another "
                "--checkpoint-dir."
            ) from None
