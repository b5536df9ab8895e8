"""`keras-elmo embed` under hostile inputs and faults (issue 22, "Why" 3, 4, 9).

A pipe or FIFO is read once (a private copy); one run at a time writes an
OUTPUT (a lock in OUTPUT.partial/); an input changed during or between runs
is never merged into a `complete` output; a full disk, an I/O error or a
model that fails to load stop with one line and exit 2, leaving what
`--resume` needs and nothing that blocks a rerun. The faults are injected
in-process at the write points (an OSError(ENOSPC)) and made real in a
subprocess: a file-size limit (EFBIG from write(2) inside HDF5) and, where
`unshare` may mount one, a small tmpfs (ENOSPC).
"""

import errno
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

import h5py
import numpy as np
import pytest
from support.embed_job import (
    assert_same_output,
    committed_parts,
    embed_args,
    embed_command,
    reference_job,
    save_tiny_model,
    start_embed,
    subprocess_env,
    wait_for_parts,
    write_sentences,
)
from support.paths import REPO

from keras_elmo.cli import main
from keras_elmo.errors import InputError
from keras_elmo.jobs import output, parts
from keras_elmo.layers.elmo_layer import ElmoLayer

FLAGS = ("--batch-size", "4", "--flush-seconds", "0")
LINES = 24


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def job(tiny_model, tmp_path_factory):
    """An input of LINES lines (six batches) and its output from an undisturbed run."""
    return reference_job(tiny_model, tmp_path_factory.mktemp("job"), LINES, FLAGS)


def copy_input(job, tmp_path):
    src = tmp_path / "in.txt"
    shutil.copyfile(job[0], src)
    return src


def before_batch(monkeypatch, number, action):
    """Run `action()` before the model call of batch `number` (1-based) of the runs
    that follow, in this process (`output.embed_batch` patched)."""
    real_embed_batch = output.embed_batch
    calls = []

    def embed_batch(*args, **kwargs):
        calls.append(None)
        if len(calls) == number:
            action()
        return real_embed_batch(*args, **kwargs)

    monkeypatch.setattr(output, "embed_batch", embed_batch)


def one_error_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("keras-elmo embed: error: "), err
    return err


def leftovers(folder):
    """What a run may not leave beside its output: private copies, temporary folders."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------ pipes and FIFOs


def feed(open_writer, data):
    """Write `data` from a thread (a pipe blocks until it is read)."""

    def write():
        try:
            with open_writer() as f:
                f.write(data)
        except BrokenPipeError:
            pass  # the reader stopped early; its error is what the test sees

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_a_pipe_is_read_once_and_gives_the_file_result(tiny_model, job, tmp_path):
    """`<(...)` or `/dev/stdin` as the input: the same vectors as the file (it was
    read three times and gave a `complete` output with no lines, exit 0)."""
    src, reference = job
    read_end, write_end = os.pipe()
    writer = feed(lambda: os.fdopen(write_end, "wb"), src.read_bytes())
    try:
        out = tmp_path / "out.hdf5"
        assert main(embed_args(tiny_model, f"/dev/fd/{read_end}", out, *FLAGS)) == 0
    finally:
        os.close(read_end)
        writer.join(10)
    assert_same_output(out, reference)
    assert leftovers(tmp_path) == []  # the private copy is gone


def test_a_fifo_is_opened_once(tiny_model, job, tmp_path):
    """A FIFO whose writer writes once (`mkfifo f; cat in.txt > f &`): opening it
    to check it, then again to read it, waited for a second writer for ever."""
    src, reference = job
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    finished = threading.Event()

    def unblock():
        # Should the job wait on a second open, give it an end of file after a
        # minute, so that the test fails instead of hanging.
        if not finished.wait(60):
            while not finished.is_set():
                fd = os.open(fifo, os.O_WRONLY)
                os.close(fd)

    feed(lambda: open(fifo, "wb"), src.read_bytes())
    threading.Thread(target=unblock, daemon=True).start()
    out = tmp_path / "out.hdf5"
    try:
        code = main(embed_args(tiny_model, fifo, out, *FLAGS))
    finally:
        finished.set()
    assert code == 0
    assert_same_output(out, reference)
    assert leftovers(tmp_path) == []


@pytest.mark.slow  # the real command, its stdin a pipe
def test_cat_into_dev_stdin(tiny_model, job, tmp_path):
    src, reference = job
    out = tmp_path / "out.hdf5"
    proc = subprocess.run(
        embed_command(tiny_model, "/dev/stdin", out, *FLAGS),
        input=src.read_bytes(),
        capture_output=True,
        cwd=REPO,
        env=subprocess_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert_same_output(out, reference)
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------ one run at a time


def busy_message(out, pid):
    return f"another keras-elmo embed is writing {os.path.realpath(out)} (pid {pid})"


def test_a_second_run_while_one_writes_is_refused(tiny_model, job, tmp_path, monkeypatch, capsys):
    """Made deterministic in one process: the second runs start from inside the
    first one's first batch, while it holds OUTPUT.partial/."""
    src, reference = copy_input(job, tmp_path), job[1]
    out = tmp_path / "out.hdf5"
    second = []

    def second_runs():
        capsys.readouterr()
        for flags in ((), ("--resume",)):
            code = main(embed_args(tiny_model, src, out, *FLAGS, *flags))
            second.append((code, capsys.readouterr().err))

    before_batch(monkeypatch, 1, second_runs)
    assert main(embed_args(tiny_model, src, out, *FLAGS)) == 0
    assert len(second) == 2
    for code, err in second:
        # (A second plain run was told "pass --resume"; a second --resume ran too.)
        assert code == 2 and err.count("\n") == 1, err
        assert busy_message(out, os.getpid()) in err, err
    assert_same_output(out, reference)
    assert not (tmp_path / "out.hdf5.partial").exists()
    assert leftovers(tmp_path) == []


def test_the_part_store_is_held_by_one_run(tmp_path):
    """Two runs that both passed the early check: the one that comes second to
    the store is refused, plain or resuming, until the first lets go."""
    out = tmp_path / "out.hdf5"
    folder = parts.partial_dir(out)
    job = {"format": parts.PARTIAL_FORMAT, "input_sha256": "0" * 64}
    first = parts.PartStore(folder, job, resume=False, stateful=False)
    try:
        for resume in (False, True):
            with pytest.raises(InputError, match=re.escape(busy_message(out, os.getpid()))):
                parts.PartStore(folder, job, resume=resume, stateful=False)
        with pytest.raises(InputError, match=re.escape(busy_message(out, os.getpid()))):
            parts.check_partial_dir(folder, resume=True, stateful=False)
    finally:
        first.close()
    again = parts.PartStore(folder, job, resume=True, stateful=False)
    again.finish()
    assert not os.path.exists(folder)
    assert os.listdir(tmp_path) == []


def test_the_merge_renames_only_its_own_file(tmp_path):
    """Another writer's file put at the merge's name midway is never renamed over OUTPUT."""
    out = tmp_path / "out.hdf5"
    job = {"format": parts.PARTIAL_FORMAT, "sentences": 2}
    store = parts.PartStore(parts.partial_dir(out), job, resume=False, stateful=False)
    store.write_batch([(0, np.zeros((1, 2), "f4")), (1, np.ones((1, 2), "f4"))], 0)

    def plan():
        yield [(0, ["a"])]
        (merged,) = glob.glob(os.path.join(store.folder, "merged-*.hdf5.tmp"))
        other = tmp_path / "other.hdf5"
        with h5py.File(other, "w") as f:
            f.attrs["complete"] = True
        os.replace(other, merged)
        yield [(1, ["b"])]

    try:
        with pytest.raises(InputError, match="was replaced during the merge"):
            store.merge(plan(), str(out), {})
    finally:
        store.close()
    assert not out.exists()
    assert sorted(os.listdir(store.folder)) == ["job.json", "lock", "part-000000.hdf5"]


@pytest.mark.slow  # two real processes: the first stopped (SIGSTOP) while the second tries
def test_a_resume_while_another_process_writes_is_refused(tiny_model, job, tmp_path, capsys):
    src = tmp_path / "in.txt"
    write_sentences(src, 400)
    out = tmp_path / "out.hdf5"
    partial = tmp_path / "out.hdf5.partial"
    proc = start_embed(tiny_model, src, out, *FLAGS)
    try:
        wait_for_parts(proc, partial, 2)
        proc.send_signal(signal.SIGSTOP)
        capsys.readouterr()
        for flags in ((), ("--resume",)):
            assert main(embed_args(tiny_model, src, out, *FLAGS, *flags)) == 2
            assert busy_message(out, proc.pid) in one_error_line(capsys)
        assert not out.exists()
    finally:
        proc.send_signal(signal.SIGCONT)
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert main(embed_args(tiny_model, src, tmp_path / "reference.hdf5", *FLAGS)) == 0
    assert_same_output(out, tmp_path / "reference.hdf5")


# ------------------------------------------------------------ the input changes


def test_an_input_rewritten_during_the_run_is_not_merged(
    tiny_model, job, tmp_path, monkeypatch, capsys
):
    """The same number of lines, other words, written while the batches run: the
    output would hold the new text's index and the old text's vectors."""
    src, reference = copy_input(job, tmp_path), job[1]
    original = src.read_bytes()
    out = tmp_path / "out.hdf5"
    real_embed_batch = output.embed_batch
    before_batch(monkeypatch, 2, lambda: write_sentences(src, LINES, seed=1))
    assert main(embed_args(tiny_model, src, out, *FLAGS)) == 2
    assert f"input {src} changed during the run" in one_error_line(capsys)
    assert not out.exists()
    assert len(committed_parts(tmp_path / "out.hdf5.partial")) == LINES // 4
    # The same text again: --resume merges the finished batches.
    monkeypatch.setattr(output, "embed_batch", real_embed_batch)
    src.write_bytes(original)
    assert main(embed_args(tiny_model, src, out, *FLAGS, "--resume")) == 0
    assert_same_output(out, reference)


def test_resume_on_a_changed_input_is_refused_in_words(
    tiny_model, job, tmp_path, monkeypatch, capsys
):
    src = copy_input(job, tmp_path)
    out = tmp_path / "out.hdf5"
    real_embed_batch = output.embed_batch

    def interrupt():
        raise KeyboardInterrupt

    before_batch(monkeypatch, 3, interrupt)
    assert main(embed_args(tiny_model, src, out, *FLAGS)) == 130
    monkeypatch.setattr(output, "embed_batch", real_embed_batch)
    partial = tmp_path / "out.hdf5.partial"
    kept = committed_parts(partial)
    assert len(kept) == 2
    write_sentences(src, LINES, seed=1)
    capsys.readouterr()
    assert main(embed_args(tiny_model, src, out, *FLAGS, "--resume")) == 2
    err = one_error_line(capsys)
    assert f"cannot resume from {partial}: the input changed since the interrupted run" in err
    assert committed_parts(partial) == kept and not out.exists()


# ------------------------------------------------------------ disk faults


def old_output(out):
    with h5py.File(out, "w") as f:
        f.create_dataset("old", data=[1.0])
    return out.read_bytes()


@pytest.mark.parametrize("where", ["part", "merge"])
def test_a_full_disk_is_one_line_and_resume_finishes(
    tiny_model, job, tmp_path, monkeypatch, capsys, where
):
    """ENOSPC where a part or the merged output is made durable (fsync and
    rename, in `parts.commit_file`): it was a traceback."""
    src, reference = copy_input(job, tmp_path), job[1]
    out = tmp_path / "out.hdf5"
    before = old_output(out)
    partial = tmp_path / "out.hdf5.partial"
    real_commit = parts.commit_file
    failing = os.path.realpath(out) if where == "merge" else str(partial / "part-000002.hdf5")

    def full_disk(tmp_name, final_name):
        if os.fspath(final_name) == failing:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_commit(tmp_name, final_name)

    monkeypatch.setattr(parts, "commit_file", full_disk)
    assert main(embed_args(tiny_model, src, out, *FLAGS)) == 2
    err = one_error_line(capsys)
    assert "No space left on device" in err and "rerun with --resume" in err
    assert out.read_bytes() == before
    names = sorted(p.name for p in partial.iterdir())
    committed = LINES // 4 if where == "merge" else 2
    assert names == ["job.json", "lock"] + [f"part-{k:06d}.hdf5" for k in range(committed)]
    monkeypatch.setattr(parts, "commit_file", real_commit)
    assert main(embed_args(tiny_model, src, out, *FLAGS, "--resume")) == 0
    assert_same_output(out, reference)
    assert leftovers(tmp_path) == []


def test_a_write_error_inside_hdf5_is_one_line(tiny_model, job, tmp_path, monkeypatch, capsys):
    """ENOSPC from the write call that stores a part's data, after 20 kB."""
    src, reference = copy_input(job, tmp_path), job[1]
    out = tmp_path / "out.hdf5"
    real_pwrite = os.pwrite
    written = []

    def pwrite(fd, data, offset):
        written.append(len(data))
        if sum(written) > 20_000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    assert main(embed_args(tiny_model, src, out, "--batch-size", "4")) == 2
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    err = one_error_line(capsys)
    assert re.search(r"cannot write \S+part-000000\.hdf5\.tmp: No space left on device", err)
    assert sorted(os.listdir(tmp_path / "out.hdf5.partial")) == ["job.json", "lock"]
    assert main(embed_args(tiny_model, src, out, "--batch-size", "4", "--resume")) == 0
    assert_same_output(out, reference)


def run_to_one_error_line(command):
    """Run `command`; it must exit 2 with one line on stderr, which is returned."""
    proc = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, env=subprocess_env(), timeout=300
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1, proc.stderr[-3000:]
    return proc.stderr


def limited(command, max_file_bytes):
    """`command` with RLIMIT_FSIZE set: a write past it fails with EFBIG (Python
    ignores SIGXFSZ), inside HDF5's own write calls."""
    start = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({max_file_bytes}, {max_file_bytes})); "
        "os.execv(sys.executable, [sys.executable] + sys.argv[1:])"
    )
    return [sys.executable, "-c", start, *command[1:]]


@pytest.mark.slow  # the real command under a file-size limit, then resumed
@pytest.mark.parametrize(
    "flags, failing",
    [
        (("--batch-size", "4"), r"part-000000\.hdf5\.tmp"),  # one part for the whole run
        (FLAGS, r"out\.hdf5 \(merging"),  # small parts; the merged file is too big
    ],
)
def test_a_real_write_error_is_one_line_and_resume_finishes(
    tiny_model, job, tmp_path, flags, failing
):
    src, reference = copy_input(job, tmp_path), job[1]
    out = tmp_path / "out.hdf5"
    # Was: a traceback after dozens of HDF5 errors (status 1), or a segfault.
    err = run_to_one_error_line(limited(embed_command(tiny_model, src, out, *flags), 24_000))
    assert re.search(failing + r".*: File too large; .*rerun with --resume", err)
    assert not out.exists()
    assert not list((tmp_path / "out.hdf5.partial").glob("*.tmp"))
    assert main(embed_args(tiny_model, src, out, *flags, "--resume")) == 0
    assert_same_output(out, reference)


def can_mount_a_tmpfs(folder):
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0"', str(folder)],
        capture_output=True,
    )
    return probe.returncode == 0


@pytest.mark.slow  # the real command writing into a 64 KiB tmpfs
def test_a_full_tmpfs_is_one_line(tiny_model, job, tmp_path):
    """A real ENOSPC (a tmpfs mounted in a private mount namespace by `unshare`,
    where the system allows it): it was a segfault (status 139)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if not can_mount_a_tmpfs(mount):
        pytest.skip("unshare cannot mount a tmpfs here (the file-size limit test still runs)")
    src = tmp_path / "in.txt"
    write_sentences(src, 200)  # about 250 kB of output
    command = embed_command(tiny_model, src, mount / "out.hdf5", *FLAGS)
    script = 'mount -t tmpfs -o size=64k tmpfs "$0" && exec "$@"'
    err = run_to_one_error_line(["unshare", "-rm", "sh", "-c", script, str(mount), *command])
    assert "No space left on device; " in err and "--resume" in err


# ------------------------------------------------------------ the model fails to load


def test_a_model_that_fails_to_load_leaves_nothing_behind(
    tiny_model, job, tmp_path, monkeypatch, capsys
):
    """It left an OUTPUT.partial/ that refused the rerun ("pass --resume") and,
    once the weights were mended, --resume too (another model_sha256)."""
    src, reference = copy_input(job, tmp_path), job[1]
    options_file, weight_file = tiny_model
    weights = tmp_path / "weights.hdf5"
    weights.write_bytes(weight_file.read_bytes()[:3000])  # truncated
    out = tmp_path / "out.hdf5"
    model = (options_file, weights)
    assert main(embed_args(model, src, out, *FLAGS)) == 2
    assert "weights" in one_error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ["in.txt", "weights.hdf5"]
    # A load that fails after the files are read (here: a stand-in error).
    weights.write_bytes(weight_file.read_bytes())

    def fail(*args, **kwargs):
        raise InputError("the model does not load")

    monkeypatch.setattr(ElmoLayer, "from_source", fail)
    assert main(embed_args(model, src, out, *FLAGS)) == 2
    assert sorted(os.listdir(tmp_path)) == ["in.txt", "weights.hdf5"]
    monkeypatch.undo()
    assert main(embed_args(model, src, out, *FLAGS)) == 0
    assert_same_output(out, reference)
