"""Shared helpers of the metrics tests: a stand-in generator, dataset and feature network, a torch-free writer of
`.pt` zips, and random VGG16-shaped tensors."""

import collections
import io
import pickle
import zipfile

import numpy as np
import tensorflow as tf

from metrics import vgg16


class TinyG:
    """Stand-in generator with the documented API: latents [B, K, d] -> images [B, R, R, 3] in [-1, 1]."""

    latent_shape = (2, 4)
    resolution = 16
    label_dim = 0

    def __init__(self):
        rng = np.random.RandomState(0)
        self.proj = tf.constant(rng.randn(8, 16 * 16 * 3).astype(np.float32) * 0.7)
        self.calls = 0

    def mapping(self, z, labels=None):
        return tf.tile(tf.cast(z, tf.float32)[:, :, None, :], [1, 1, 3, 1])  # ws [B, K, L=3, d]

    def synthesis(self, ws, noise_mode="const"):
        flat = tf.reshape(tf.reduce_mean(ws, axis=2), [-1, 8])
        return tf.reshape(tf.tanh(flat @ self.proj), [-1, 16, 16, 3])

    def __call__(self, z, labels=None, truncation_psi=1.0, noise_mode="const", return_maps=False):
        self.calls += 1
        return self.synthesis(self.mapping(z, labels), noise_mode=noise_mode)


class MemDataset:
    """In-memory stand-in for training.data.loader.Dataset."""

    def __init__(self, n=30, ratio=1.0):
        self.images = np.random.RandomState(1).randint(0, 256, [n, 16, 16, 3]).astype(np.uint8)
        self.name, self.path, self.resolution, self.ratio, self.label_dim = "mem", "/mem/ds", 16, ratio, 0
        self.num_images = n
        self.reads = 0

    def tf_dataset(self, batch_size, shuffle=True, repeat=True, seed=0):
        self.reads += 1
        return tf.data.Dataset.from_tensor_slices(self.images).batch(batch_size)


class StandInNet:
    """Cheap feature network: per-channel mean/std/min/max (12-d) and softmax 'class probabilities'."""

    name, path, sha256, preprocessing = "stand-in", "/none", "0" * 64, "stand-in"

    def __init__(self, has_logits=True):
        self.has_logits = has_logits
        self.shapes = []

    def features(self, batch, resize="legacy"):
        self.shapes.append(batch.shape)
        x = batch.astype(np.float32) / 255.0
        return np.concatenate([x.mean((1, 2)), x.std((1, 2)), x.min((1, 2)), x.max((1, 2))], axis=1)

    def features_and_probs(self, batch):
        f = self.features(batch)
        logits = f @ np.linspace(-3, 3, 12 * 5).reshape(12, 5)
        return f, np.asarray(tf.nn.softmax(logits))


_DTYPE_STORAGE = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage",
                  np.dtype("int64"): "LongStorage", np.dtype("float16"): "HalfStorage"}


class _Global:
    """A named global as written in the pickle (never resolved on the writing side)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # only so that pickle accepts it as a reduce callable
        raise AssertionError("not callable")


class Module:
    """A TorchScript-like module record: `__torch__.<module>.<cls>` with an attribute dict."""

    def __init__(self, qualname, **attrs):
        self.qualname, self.attrs = qualname, attrs



class _Tensor:
    def __init__(self, array, key):
        self.array, self.key = array, key

    def __reduce_ex__(self, protocol):
        a = self.array
        stride = tuple(s // a.itemsize for s in a.strides)
        storage = _Storage(a, self.key)
        return (_Global("torch._utils", "_rebuild_tensor_v2"),
                (storage, 0, a.shape, stride, False, _Call(_Global("collections", "OrderedDict"))))


class _Call:
    """Pickles as `func()` (a REDUCE with no arguments)."""

    def __init__(self, func):
        self.func = func

    def __reduce_ex__(self, protocol):
        return self.func, ()


class _Storage:
    def __init__(self, array, key):
        self.array, self.key = array, key


class _Writer(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def save_global(self, obj, name=None):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_Global] = save_global

    def save_module(self, obj):
        mod, _, name = obj.qualname.rpartition(".")
        self.save(_Global(mod, name))
        self.save(())
        self.write(pickle.NEWOBJ)
        self.memoize(obj)
        self.save(obj.attrs)
        self.write(pickle.BUILD)

    dispatch[Module] = save_module

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            kind = _Global("torch", _DTYPE_STORAGE[obj.array.dtype])
            return ("storage", kind, obj.key, "cpu", obj.array.size)
        return None


def _wrap_tensors(obj, arrays):
    if isinstance(obj, np.ndarray):
        arrays.append(np.ascontiguousarray(obj))
        return _Tensor(arrays[-1], str(len(arrays) - 1))
    if isinstance(obj, Module):
        return Module(obj.qualname, **{k: _wrap_tensors(v, arrays) for k, v in obj.attrs.items()})
    if isinstance(obj, dict):
        return {k: _wrap_tensors(v, arrays) for k, v in obj.items()}
    return obj


def write_pt(path, obj, prefix="archive"):
    """Writes `obj` (nested dicts / `Module`s with numpy arrays) as a torch-style `.pt` zip."""
    arrays = []
    wrapped = _wrap_tensors(obj, arrays)
    buf = io.BytesIO()
    _Writer(buf, protocol=2).dump(wrapped)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", buf.getvalue())
        for i, a in enumerate(arrays):
            z.writestr(f"{prefix}/data/{i}", a.astype(a.dtype.newbyteorder("<")).tobytes())
        z.writestr(f"{prefix}/version", "3\n")


FC = 16  # small fully-connected width keeps the synthetic file small


def synthetic_tensors(seed=0, with_fc=True, with_lins=True):
    """Random VGG16-shaped tensors in torch layouts and `.pt` order."""
    rng = np.random.RandomState(seed)
    out = collections.OrderedDict()
    cin = 3
    for i, c in enumerate(vgg16.CONV_CHANNELS):
        out[f"layers.conv{i}.weight"] = (rng.randn(c, cin, 3, 3) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
        out[f"layers.conv{i}.bias"] = (rng.randn(c) * 0.05).astype(np.float32)
        cin = c
    if with_fc:
        out["layers.fc6.weight"] = (rng.randn(FC, 25088) * np.sqrt(2.0 / 25088)).astype(np.float32)
        out["layers.fc6.bias"] = (rng.randn(FC) * 0.05).astype(np.float32)
        out["layers.fc7.weight"] = (rng.randn(FC, FC) * np.sqrt(2.0 / FC)).astype(np.float32)
        out["layers.fc7.bias"] = (rng.randn(FC) * 0.05).astype(np.float32)
    if with_lins:
        for j, idx in enumerate(vgg16.POOL_AFTER):
            out[f"lpips.lin{j}.weight"] = rng.uniform(0, 1, [1, vgg16.CONV_CHANNELS[idx], 1, 1]).astype(np.float32)
    return out
