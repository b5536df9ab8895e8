"""The published `weights.hdf5` format <-> the Keras weights, as one table.

`weight_table(encoder, bilm)` lists every dataset of the original file with
its shape and the Keras variable slot(s) it fills. Loading and saving walk
the same table, so write -> read is exact by construction and every dataset
name and shape is checked in both directions.
"""

import dataclasses

import h5py
import numpy as np

from keras_elmo import options as options_lib
from keras_elmo.errors import InputError


@dataclasses.dataclass(frozen=True)
class Port:
    """One dataset of the original file and where its values live in Keras.

    `slots` are (variable, index) pairs; index selects a leading slice of the
    variable (the direction of a stacked LSTM weight) or is None for all of it.
    `to_keras` maps the file array to one array per slot; `to_file` inverts it.
    """

    dataset: str
    shape: tuple
    slots: tuple
    to_keras: callable = lambda a: [a]
    to_file: callable = lambda parts: parts[0]


def _char_embed_port(encoder):
    # The file has rows for ids 1..261 only; id 0 is the batch-padding id we
    # reserve, so a zero row is prepended on load and dropped on save.
    n_rows, dim = encoder.char_embed.shape
    return Port(
        "char_embed",
        (n_rows - 1, dim),
        ((encoder.char_embed, None),),
        to_keras=lambda a: [np.concatenate([np.zeros((1, a.shape[1]), a.dtype), a])],
        to_file=lambda parts: parts[0][1:],
    )


def _lstm_ports(bilm, layer, direction):
    lstm = bilm.lstms[layer]
    prefix = f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
    n_in, n_gates = lstm.input_dim, 4 * lstm.units
    # Feature-major layers store each matrix transposed (lstm.run_packed says
    # why); the file always holds W.
    t = (lambda a: a.T) if lstm.feature_major else (lambda a: a)
    return [
        # W_0 multiplies [x, h_prev] (x first); we keep the two row blocks apart
        # so the input side can be computed for all steps in one matmul. The
        # gates stay in TF1's i, j, f, o order along the 4D axis.
        Port(
            f"{prefix}/W_0",
            (n_in + lstm.projection_dim, n_gates),
            ((lstm.kernel, direction), (lstm.recurrent_kernel, direction)),
            to_keras=lambda a, n=n_in: [t(a[:n]), t(a[n:])],
            to_file=lambda parts: np.concatenate([t(p) for p in parts], axis=0),
        ),
        # B has no forget bias folded in: the cell adds 1.0 at run time.
        Port(f"{prefix}/B", (n_gates,), ((lstm.bias, direction),)),
        Port(
            f"{prefix}/W_P_0",
            (lstm.units, lstm.projection_dim),
            ((lstm.projection, direction),),
            to_keras=lambda a: [t(a)],
            to_file=lambda parts: t(parts[0]),
        ),
    ]


def weight_table(encoder, bilm):
    """The full list of Ports for a token encoder + biLM pair."""
    table = [_char_embed_port(encoder)]
    for i, (kernel, bias) in enumerate(zip(encoder.conv_kernels, encoder.conv_biases)):
        # Same (1, width, char_dim, count) conv2d layout as the file.
        table.append(Port(f"CNN/W_cnn_{i}", tuple(kernel.shape), ((kernel, None),)))
        table.append(Port(f"CNN/b_cnn_{i}", tuple(bias.shape), ((bias, None),)))
    for k, hw in enumerate(encoder.highway):
        for name in ("W_carry", "b_carry", "W_transform", "b_transform"):
            var = hw[name.lower()]
            table.append(Port(f"CNN_high_{k}/{name}", tuple(var.shape), ((var, None),)))
    if encoder.use_projection:
        table.append(
            Port("CNN_proj/W_proj", tuple(encoder.w_proj.shape), ((encoder.w_proj, None),))
        )
        table.append(
            Port("CNN_proj/b_proj", tuple(encoder.b_proj.shape), ((encoder.b_proj, None),))
        )
    for direction in (0, 1):
        for layer in range(bilm.n_layers):
            table.extend(_lstm_ports(bilm, layer, direction))
    return table


def expected_datasets(options):
    """{dataset name: shape} of a weights file for these (validated) options.

    Computed from the options alone, so a weights file can be checked before
    any layer allocates memory; `weight_table` gives the same names and shapes
    from built layers (a test keeps the two in step).
    """
    lstm, cnn = options["lstm"], options["char_cnn"]
    dim, proj, char_dim = lstm["dim"], lstm["projection_dim"], cnn["embedding"]["dim"]
    f = options_lib.n_filters(options)
    # 261 rows: the file has no row for our padding id 0 (_char_embed_port).
    shapes = {"char_embed": (261, char_dim)}
    for i, (width, count) in enumerate(cnn["filters"]):
        shapes[f"CNN/W_cnn_{i}"] = (1, width, char_dim, count)
        shapes[f"CNN/b_cnn_{i}"] = (count,)
    for k in range(cnn["n_highway"]):
        shapes.update(
            {
                f"CNN_high_{k}/W_carry": (f, f),
                f"CNN_high_{k}/b_carry": (f,),
                f"CNN_high_{k}/W_transform": (f, f),
                f"CNN_high_{k}/b_transform": (f,),
            }
        )
    if options_lib.has_projection(options):
        shapes["CNN_proj/W_proj"] = (f, proj)
        shapes["CNN_proj/b_proj"] = (proj,)
    for direction in (0, 1):
        for layer in range(lstm["n_layers"]):
            prefix = f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
            # Every layer's input is P wide (the token vectors, then the
            # projected outputs of the layer below), and so is h_prev.
            shapes[f"{prefix}/W_0"] = (2 * proj, 4 * dim)
            shapes[f"{prefix}/B"] = (4 * dim,)
            shapes[f"{prefix}/W_P_0"] = (dim, proj)
    return shapes


def _open(weight_file):
    try:
        return h5py.File(weight_file, "r")
    except OSError as err:
        raise InputError(f"Cannot read weights file {weight_file}: {err}") from None


# Storage layouts a dataset of this file may have (h5py.h5d constants);
# VIRTUAL (data mapped from other files) is not among them.
_LOCAL_LAYOUTS = (h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED, h5py.h5d.COMPACT)
# Entries (links) the scan for unexpected datasets looks at before it gives
# up: a published file has a few dozen; a file with millions of groups is
# not a weights file of any options.
MAX_FILE_ENTRIES = 100_000


def _link_kind(link):
    if isinstance(link, h5py.ExternalLink):
        return f"an external link (to {link.filename}:{link.path})"
    if isinstance(link, h5py.SoftLink):
        return f"a soft link (to {link.path})"
    return "a link that is not a hard link"


def _not_utf8(group, weight_file):
    return InputError(
        f"Weights file {weight_file}: group {group.name!r} holds an entry whose "
        "name is not UTF-8; not a weights file."
    )


def _get_link(group, part, weight_file):
    """The link `part` of `group`, not followed (None if absent)."""
    try:
        return group.get(part, getlink=True)
    except UnicodeDecodeError:
        # h5py decodes the group's other names while looking one up.
        raise _not_utf8(group, weight_file) from None


def _reach(handle, weight_file, name):
    """The object at `name`, reached through hard links only (None if absent).

    h5py's `handle[name]` follows soft and external links, and an external
    link opens another file: each path component's link is looked at first.
    """
    node = handle
    walked = []
    for part in name.split("/"):
        link = _get_link(node, part, weight_file) if isinstance(node, h5py.Group) else None
        if link is None:
            return None
        walked.append(part)
        if not isinstance(link, h5py.HardLink):
            raise InputError(
                f"Weights file {weight_file}: dataset {name!r} is reached through "
                f"{_link_kind(link)} at {'/'.join(walked)!r}; only datasets stored "
                "in the file itself are read."
            )
        node = node[part]
    return node


def _check_storage(node, weight_file, name):
    """Refuse a dataset whose bytes are not this file's own, or whose chunks
    are larger than the dataset (a small compressed chunk can inflate to
    gigabytes)."""
    plist = node.id.get_create_plist()
    layout = plist.get_layout()
    if layout not in _LOCAL_LAYOUTS or node.is_virtual:
        raise InputError(
            f"Weights file {weight_file}: dataset {name!r} is a virtual dataset "
            "(its values are mapped from other files); only datasets stored in "
            "the file itself are read."
        )
    if plist.get_external_count() > 0:
        where = plist.get_external(0)[0].decode("utf-8", "replace")
        raise InputError(
            f"Weights file {weight_file}: dataset {name!r} keeps its values in an "
            f"external file ({where!r}); only datasets stored in the file itself are read."
        )
    if layout == h5py.h5d.CHUNKED:
        chunks = tuple(int(c) for c in plist.get_chunk())
        if any(c > s for c, s in zip(chunks, node.shape)):
            raise InputError(
                f"Weights file {weight_file}: dataset {name!r} has chunks of shape "
                f"{chunks}, larger than the dataset {tuple(node.shape)}."
            )


def _dataset(handle, weight_file, name, shape):
    """The h5py dataset `name`, checked for presence, kind, shape and storage
    (no data read)."""
    node = _reach(handle, weight_file, name)
    if not isinstance(node, h5py.Dataset):
        what = "no dataset" if node is None else "a group, not a dataset,"
        raise InputError(
            f"Weights file {weight_file} has {what} {name!r} (expected shape {shape}); "
            "does it match the options file?"
        )
    if node.dtype.kind != "f":
        raise InputError(
            f"Weights file {weight_file}: dataset {name!r} holds {node.dtype} values, "
            "not floating-point numbers."
        )
    if tuple(node.shape) != tuple(shape):
        raise InputError(
            f"Weights file {weight_file}: dataset {name!r} has shape "
            f"{tuple(node.shape)}, but the options give {tuple(shape)}."
        )
    _check_storage(node, weight_file, name)
    return node


def _file_entries(handle, weight_file):
    """Names of every dataset and non-hard link in the file (groups walked,
    links never followed, each group once)."""
    found, seen, stack, count = [], {handle.id}, [handle], 0
    while stack:
        group = stack.pop()
        # len() is cheap (the group's link count): the cap holds before listing.
        count += len(group)
        if count > MAX_FILE_ENTRIES:
            raise InputError(
                f"Weights file {weight_file} holds over {MAX_FILE_ENTRIES} entries; "
                "not a weights file."
            )
        try:
            parts = list(group)
        except UnicodeDecodeError:
            raise _not_utf8(group, weight_file) from None
        for part in parts:
            link = _get_link(group, part, weight_file)
            path = f"{group.name.rstrip('/')}/{part}".lstrip("/")
            if not isinstance(link, h5py.HardLink):
                found.append(path)
                continue
            node = group[part]
            if isinstance(node, h5py.Group):
                if node.id not in seen:
                    seen.add(node.id)
                    stack.append(node)
            elif isinstance(node, h5py.Dataset):
                found.append(path)
    return found


def _check_nothing_more(handle, weight_file, expected):
    """Every dataset (and link) of the file must be one the options expect:
    a file with more layers or highways than the options say would load
    silently with the extra weights unused."""
    extra = sorted(set(_file_entries(handle, weight_file)) - set(expected))
    if extra:
        shown = ", ".join(repr(name) for name in extra[:5])
        more = f" and {len(extra) - 5} more" if len(extra) > 5 else ""
        raise InputError(
            f"Weights file {weight_file} holds {len(extra)} "
            f"dataset{'s' if len(extra) != 1 else ''} the options do "
            f"not describe: {shown}{more}; does it match the options file "
            "(n_layers, n_highway, filters, projection)?"
        )


def check_weights_file(weight_file, options):
    """Check every dataset's presence, dtype, shape and storage against the
    options, and that the file holds no dataset the options do not describe.

    Reads metadata only (h5py gives shapes without reading data), so it is
    cheap and runs before a model is built: a mismatched options file fails
    here instead of after allocating its weights.
    """
    expected = expected_datasets(options)
    with _open(weight_file) as handle:
        for name, shape in expected.items():
            _dataset(handle, weight_file, name, shape)
        _check_nothing_more(handle, weight_file, expected)


def _read(node, weight_file, name):
    try:
        array = node[...].astype(np.float32)
    except (OSError, ValueError, TypeError) as err:
        raise InputError(
            f"Weights file {weight_file}: cannot read dataset {name!r}: {err}"
        ) from None
    # A NaN or Inf weight would turn every output into NaN without a word.
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"Weights file {weight_file}: dataset {name!r} holds {int(bad.sum())} "
            f"NaN or infinite values (the first at index {first})."
        )
    return array


class SlotWriter:
    """Variables filled slot by slot from a checkpoint, assigned all at once.

    A checkpoint tensor fills a whole variable (index None) or one leading
    slice of it (e.g. one direction of a stacked LSTM weight). The values are
    gathered in numpy copies, and `assign_all` writes them into the variables
    only once every tensor has been read and checked, so a bad file leaves
    the model as it was.
    """

    def __init__(self):
        self._pending = {}  # id(variable) -> (variable, numpy value being assembled)

    def put(self, var, index, value):
        if id(var) not in self._pending:
            self._pending[id(var)] = (var, np.array(var.numpy()))
        target = self._pending[id(var)][1]
        if index is None:
            target[...] = value
        else:
            target[index] = value

    def assign_all(self):
        for var, value in self._pending.values():
            var.assign(value)


def load_original_weights(weight_file, encoder, bilm):
    """Fill the (built) encoder and biLM from a published weights.hdf5."""
    table = weight_table(encoder, bilm)
    writer = SlotWriter()
    with _open(weight_file) as handle:
        # Every dataset's metadata and the file's entries before any data.
        nodes = [_dataset(handle, weight_file, port.dataset, port.shape) for port in table]
        _check_nothing_more(handle, weight_file, [port.dataset for port in table])
        for port, node in zip(table, nodes):
            array = _read(node, weight_file, port.dataset)
            for (var, index), part in zip(port.slots, port.to_keras(array)):
                writer.put(var, index, part)
    writer.assign_all()


def save_original_weights(weight_file, encoder, bilm):
    """Write the encoder and biLM in the published weights.hdf5 layout."""
    with h5py.File(weight_file, "w") as handle:
        for port in weight_table(encoder, bilm):
            parts = []
            for var, index in port.slots:
                value = var.numpy()
                parts.append(value if index is None else value[index])
            array = np.asarray(port.to_file(parts), dtype=np.float32)
            if tuple(array.shape) != tuple(port.shape):
                raise ValueError(f"Internal shape mismatch writing {port.dataset}: {array.shape}.")
            handle.create_dataset(port.dataset, data=array)


def options_to_original(options):
    """The options dict as written next to the weights (published layout)."""
    options = options_lib.validate_options(options)
    lstm = {k: v for k, v in options["lstm"].items() if v is not None}
    return {"lstm": lstm, "char_cnn": options["char_cnn"]}
