"""An independent numpy ELMo, written from the spec, reading the hdf5 directly.

Deliberately naive (Python loops, one sentence at a time, no shared code with
keras_elmo) so that it can serve as the expected value in tests.
"""

import h5py
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def char_ids(token, max_chars=50):
    """Spec section 2, written out again."""
    if token == "<S>":
        raw = [258, 256, 259]
    elif token == "</S>":
        raw = [258, 257, 259]
    else:
        raw = [258] + list(token.encode("utf-8")[: max_chars - 2]) + [259]
    raw = raw + [260] * (max_chars - len(raw))
    return np.array(raw) + 1


class NumpyElmo:
    def __init__(self, options, weight_file):
        self.o = options
        with h5py.File(weight_file, "r") as f:
            self.w = {}
            f.visititems(
                lambda n, obj: (
                    self.w.__setitem__(n, obj[...]) if isinstance(obj, h5py.Dataset) else None
                )
            )
        self.embed = np.concatenate(
            [np.zeros((1, self.w["char_embed"].shape[1])), self.w["char_embed"]]
        )

    def token_vector(self, token):
        cnn = self.o["char_cnn"]
        x = self.embed[char_ids(token, cnn["max_characters_per_token"])]  # (C, d)
        feats = []
        for i, (width, _count) in enumerate(cnn["filters"]):
            k = self.w[f"CNN/W_cnn_{i}"][0]  # (width, d, count)
            b = self.w[f"CNN/b_cnn_{i}"]
            conv = np.stack(
                [np.einsum("wd,wdn->n", x[p : p + width], k) for p in range(x.shape[0] - width + 1)]
            )
            v = conv.max(axis=0) + b
            feats.append(np.maximum(v, 0) if cnn["activation"] == "relu" else np.tanh(v))
        h = np.concatenate(feats)
        for layer in range(cnn.get("n_highway") or 0):
            p = f"CNN_high_{layer}/"
            g = sigmoid(h @ self.w[p + "W_carry"] + self.w[p + "b_carry"])
            t = np.maximum(h @ self.w[p + "W_transform"] + self.w[p + "b_transform"], 0)
            h = g * t + (1 - g) * h
        if "CNN_proj/W_proj" in self.w:
            h = h @ self.w["CNN_proj/W_proj"] + self.w["CNN_proj/b_proj"]
        return h

    def _run_lstm(self, direction, layer, xs, c, h):
        p = f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell/"
        W, B, WP = self.w[p + "W_0"], self.w[p + "B"], self.w[p + "W_P_0"]
        lstm = self.o["lstm"]
        outs = []
        for x in xs:
            z = np.concatenate([x, h]) @ W + B
            i, j, f, o = np.split(z, 4)
            c = sigmoid(f + 1.0) * c + sigmoid(i) * np.tanh(j)
            if lstm.get("cell_clip"):
                c = np.clip(c, -lstm["cell_clip"], lstm["cell_clip"])
            h = (sigmoid(o) * np.tanh(c)) @ WP
            if lstm.get("proj_clip"):
                h = np.clip(h, -lstm["proj_clip"], lstm["proj_clip"])
            outs.append(h)
        return np.array(outs), c, h

    def layers(self, tokens, state=None):
        """All representations of one sentence, shape (n_layers + 1, T, 2P); and final state."""
        lstm = self.o["lstm"]
        dim, proj = lstm["dim"], lstm["projection_dim"]
        seq = ["<S>"] + list(tokens) + ["</S>"]
        x = np.array([self.token_vector(t) for t in seq])
        new_state = {}
        per_dir = []
        for direction in (0, 1):
            inp = x if direction == 0 else x[::-1]
            outs = []
            for layer in range(lstm["n_layers"]):
                c0, h0 = (state or {}).get((direction, layer), (np.zeros(dim), np.zeros(proj)))
                out, c, h = self._run_lstm(direction, layer, inp, c0, h0)
                new_state[(direction, layer)] = (c, h)
                if lstm.get("use_skip_connections") and layer > 0:
                    out = out + inp
                outs.append(out if direction == 0 else out[::-1])
                inp = out
            per_dir.append(outs)
        reps = [np.concatenate([x, x], -1)] + [
            np.concatenate([per_dir[0][k], per_dir[1][k]], -1) for k in range(lstm["n_layers"])
        ]
        return np.stack(reps)[:, 1:-1], new_state
