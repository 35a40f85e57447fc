"""ggufkit: read, dequantize and quantize GGUF files from Python.

The C++ library underneath is ggufkit's (libgguf, quant/, kernels/): files are memory-mapped
and parsed once, tensors are zero-copy numpy views of the mapping, and dequantization is the
library's exact one (the same bits as `gguf`'s tools), on several threads.

    import ggufkit
    with ggufkit.open("model.gguf") as f:
        print(f.metadata["general.architecture"])
        w = f.tensors["blk.0.attn_q.weight"].numpy()   # float32, rows last

Shapes are in numpy order: the slowest-varying dimension first, and the row (ggml's ne[0],
the dimension a block of a quantized type runs along) last. A tensor ggml describes as
ne = [4096, 11008] is shape (11008, 4096) here.
"""
from __future__ import annotations

import os
from typing import Iterator, Mapping

from . import _ggufkit
from ._ggufkit import Error, Metadata as _Metadata, StringArray, Tensor, TensorType

__all__ = ["open", "File", "Tensor", "TensorType", "StringArray", "Error", "quantize", "dequantize", "types", "tensor_type", "check", "requant", "error", "Writer"]


class _MetadataMapping(Mapping):
    """The file's keys, in file order; values are converted when read.

    Integers and floats come back as Python numbers, strings as str, numeric arrays as
    read-only numpy arrays viewing the file, string arrays as a lazy StringArray (a 150k-token
    vocabulary is not converted up front). `type_of(key)` gives the GGUF value type.
    """

    def __init__(self, native: _Metadata):
        self._native = native
        self._keys = None

    def __getitem__(self, key: str):
        return self._native[key]

    def __contains__(self, key) -> bool:
        return isinstance(key, str) and key in self._native

    def __iter__(self) -> Iterator[str]:
        if self._keys is None:
            self._keys = self._native.keys()
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._native)

    def type_of(self, key: str) -> str:
        """The GGUF value type of `key` as `gguf inspect` names it: "u32", "str", "arr[str]", ..."""
        return self._native.type_of(key)

    def __repr__(self) -> str:
        return f"<ggufkit metadata: {len(self)} keys>"


class File:
    """An open GGUF file (or split set, or .gguf.zst), from ggufkit.open().

    Attributes: path, version, alignment, metadata (a read-only mapping), tensors (name ->
    Tensor, in file order), parts (the paths of a split set's files). Everything handed out
    keeps the mapping alive; close() only drops this object's own reference.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if "://" not in self.path and not os.path.exists(self.path):
            raise FileNotFoundError(2, "No such file or directory", self.path)
        owner, self.version, self.alignment, metadata, tensors, self.parts = _ggufkit._open(self.path)
        self._owner = owner
        self.metadata = _MetadataMapping(metadata)
        self.tensors: dict[str, Tensor] = tensors

    def close(self) -> None:
        self._owner = None

    def __enter__(self) -> "File":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ggufkit.File {self.path!r}: v{self.version}, {len(self.metadata)} keys, {len(self.tensors)} tensors>"


def open(path: str | os.PathLike) -> File:  # noqa: A001 (the name users expect)
    """Opens a GGUF file, any part of a split set (all parts are opened), a .gguf.zst or an
    http(s) URL. Raises ggufkit.Error (a ValueError) naming the file and offset on bad input,
    FileNotFoundError for a path that does not exist."""
    return File(path)


def quantize(array, type, importance=None, threads: int = 0, effort: str = "default", scales: str = "default"):
    """Quantizes `array` (float32, or anything numpy converts; rows along the last
    dimension, whose length must be a whole number of the type's blocks) to `type` (a name
    such as "q4_K", an id, or a TensorType). Returns the bytes as a uint8 numpy array.

    importance: one non-negative weight per column (an importance matrix's entry for the
    tensor); required by the types that need one (iq2_xxs, iq2_xs, iq1_s, ...).
    threads: 0 for one per core. effort: "fast", "default" or "best" (see gguf requant --help).
    scales: "default", "least-squares" (every block's least-squares scales, also on IQ1_S,
    IQ1_M, IQ2_XXS and IQ2_XS, whose default goes halfway to keeping the source's projection,
    and IQ2_S, a quarter of the way) or "unbiased" (the whole
    projection), as gguf requant's --least-squares-scales and --unbiased-scales.
    Raises ValueError naming the row and column for NaN or Inf."""
    return _ggufkit._quantize(array, type, importance, threads, effort, scales)


def dequantize(buffer, type, shape, threads: int = 0):
    """The float32 values of `buffer` (bytes of `type`, e.g. from Tensor.raw() or quantize()),
    as an array of `shape` (rows last). Exact: the same bits as the C++ library."""
    return _ggufkit._dequantize(buffer, type, tuple(shape), threads)


def tensor_type(type) -> TensorType:
    """The TensorType for a name ("q4_K", case-insensitive), an id or a TensorType."""
    return _ggufkit._type(type)


def types() -> list[TensorType]:
    """Every tensor type GGUF files may hold today (retired ids left out), in id order."""
    return _ggufkit._types()


def check(path: str | os.PathLike, data: bool = True, threads: int = 0) -> dict:
    """What `gguf check --json` reports on a file (or split set, or .gguf.zst): a dict with
    `file`, `data_checked`, `errors`, `warnings` (exact counts), `findings` (every one, errors
    first: dicts with `severity` "error" or "warning", `where`, `message`) and `truncated`
    (structural faults past the first 1,000 are counted, not listed). With data=False the
    tensor data is not scanned. Raises ggufkit.Error when the file cannot be read at all."""
    path = os.fspath(path)
    if "://" not in path and not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    return _ggufkit._check(path, data, threads)


def requant(src: str | os.PathLike, dst: str | os.PathLike, type: str = "Q4_K_M", imatrix=None, threads: int = 0,
            effort: str = "default", allow_requantize: bool = False, progress=None, scales: str = "default",
            direct_io: bool = True) -> dict:
    """`gguf requant SRC DST TYPE`: re-quantizes a model as llama-quantize would (the same
    per-tensor types for every mix; `gguf requant --list` names them), writing DST through a
    temporary file that is renamed into place only when complete.

    imatrix: an importance matrix file (llama.cpp's .dat or GGUF form). threads: 0 for one per
    core. effort: "fast", "default" or "best". progress(index, count, tensor, done_bytes,
    total_bytes) is called as each tensor is written; an exception it raises stops the run
    and nothing is left at DST. scales: "default", "least-squares" or "unbiased" (as in
    quantize()). direct_io: False writes DST through the page cache (--no-direct-io); the
    same bytes either way. Returns a dict: tensors, converted, fallbacks, bytes_in,
    bytes_out, bits_per_weight_in/out, warnings, outputs."""
    return _ggufkit._requant(os.fspath(src), os.fspath(dst), type, None if imatrix is None else os.fspath(imatrix), threads, effort,
                             allow_requantize, progress, scales, direct_io)


def error(path: str | os.PathLike, type, imatrix=None, tensors: str | None = None, threads: int = 0) -> dict:
    """What `gguf error --json` reports: every tensor of the file re-quantized to `type` (a
    tensor type such as "q4_K", not a mix) and the error of the round trip. A dict with
    `file`, `type`, `bits_per_weight`, `imatrix`, `tensors` (each: name, source_type, shape,
    elements, rmse, weighted_rmse (None without importance), max_abs_error, snr_db ("inf" for
    an exact round trip), imatrix), `skipped` (name, reason) and `total`. `tensors`: only
    names matching this regular expression. spec/check-json.md has the formulas."""
    path = os.fspath(path)
    if "://" not in path and not os.path.exists(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    return _ggufkit._error(path, type, None if imatrix is None else os.fspath(imatrix), tensors, threads)


class Writer:
    """Builds a GGUF file: keys, then tensors, written at write() (or at the end of a `with`
    block that raised nothing) to a temporary file beside `path` that is renamed into place
    only when complete.

        with ggufkit.Writer("out.gguf", arch="llama") as w:
            w.add("llama.block_count", 32)                 # u32: the type ints get
            w.add("general.name", "my model")
            w.add_tensor("output.weight", array, "q4_K")   # quantized here; f32/f16 arrays as they are
            w.add_tensor_from(src.tensors["token_embd.weight"])   # another file's, copied file to file

    Value types: bool, str, float (f32), int (u32 when it fits, else i64), lists of those
    (ints as i32), numpy arrays and scalars with their dtype; `type="u64"`, `"arr[f32]"`, ...
    names one. Before writing, known keys are checked as `gguf check` checks them: a key with
    another type than llama.cpp reads (general.file_type as a str, say) stops the write with
    a ValueError naming each, unless write(check=False).
    """

    def __init__(self, path: str | os.PathLike, arch: str | None = None):
        self.path = os.fspath(path)
        self._w = _ggufkit._Writer()
        if arch is not None:
            self.add("general.architecture", arch)

    def add(self, key: str, value, type: str | None = None) -> None:
        """Sets `key` (replacing its value, in place, when set before)."""
        self._w.set(key, value, type)

    def remove(self, key: str) -> None:
        self._w.remove(key)

    def __contains__(self, key: str) -> bool:
        return key in self._w

    def add_tensor(self, name: str, array, type=None, importance=None, threads: int = 0, effort: str = "default") -> None:
        """Appends a tensor of `array`'s shape (rows last). Without `type`, a float32 array is
        stored as f32 and a float16 one as f16, byte for byte; with one, the values are
        quantized to it (ggufkit.quantize: `importance`, `threads`, `effort`)."""
        import numpy as np

        a = np.asarray(array)
        if type is None:
            if a.dtype not in (np.float32, np.float16):
                raise TypeError(f"add_tensor '{name}': a {a.dtype} array needs a type (f32, f16, q8_0, ...)")
            type = "f32" if a.dtype == np.float32 else "f16"
        t = tensor_type(type)
        if (t.name, a.dtype) in (("f32", np.float32), ("f16", np.float16)):
            data = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        else:
            data = quantize(a.astype(np.float32, copy=False), t, importance=importance, threads=threads, effort=effort)
        self._w.add_tensor(name, data, t, list(a.shape))

    def add_tensor_from(self, tensor: Tensor, name: str | None = None) -> None:
        """Appends another open file's tensor as it is (its type, shape and bytes), under
        `name` when given. The file stays open until this writer is gone."""
        self._w.add_tensor_from(tensor, name)

    def add_from(self, file: File, key: str, name: str | None = None) -> None:
        """Sets a key of another open file (under `name` when given), its type and value as
        they are (nested arrays included)."""
        self._w.set_from(file._owner, key, name)

    def key_type_errors(self) -> list[str]:
        """Known keys set so far with another type than llama.cpp reads (gguf check's
        findings, e.g. "general.file_type: has type str, expected u32")."""
        return self._w.key_type_errors()

    def write(self, check: bool = True) -> None:
        self._w.write(self.path, check)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.write()
