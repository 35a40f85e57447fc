"""A drop-in for the common part of gguf-py's reader, on ggufkit.

    from ggufkit.compat import GGUFReader          # instead of: from gguf import GGUFReader

    reader = GGUFReader("model.gguf")
    for name, field in reader.fields.items():       # "GGUF.version", ... then every key
        value = field.parts[field.data[0]]           # numpy views of the file, as gguf-py gives them
    for t in reader.tensors:
        t.name, t.tensor_type.name, t.shape, t.n_elements, t.n_bytes, t.data_offset, t.data

The file is opened (and validated) by ggufkit; the fields' parts are built the way gguf-py
lays them out (the key's length and bytes, the value type, then the value's pieces; an
array's elements one piece each), but only when a field's `parts` is first read, so opening
a large vocabulary costs what ggufkit's open costs. Tensor `data` is a view of the mapping:
F32, F16, F64 and the integer types with their dtype and numpy-order shape, every other type
as bytes with the last dimension in bytes. `GGUFValueType` and `GGMLQuantizationType` are
IntEnums with gguf-py's names and values.
"""
from __future__ import annotations

import builtins
import os
from collections import OrderedDict
from enum import IntEnum
from typing import Any

import numpy as np

from . import open as _open_file
from . import types as _types


class GGUFValueType(IntEnum):
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


GGMLQuantizationType = IntEnum("GGMLQuantizationType", {t.name.upper(): t.id for t in _types()})

_SCALARS = {
    GGUFValueType.UINT8: np.uint8, GGUFValueType.INT8: np.int8, GGUFValueType.UINT16: np.uint16, GGUFValueType.INT16: np.int16,
    GGUFValueType.UINT32: np.uint32, GGUFValueType.INT32: np.int32, GGUFValueType.FLOAT32: np.float32, GGUFValueType.BOOL: np.bool_,
    GGUFValueType.UINT64: np.uint64, GGUFValueType.INT64: np.int64, GGUFValueType.FLOAT64: np.float64,
}
# Tensor types whose data gguf-py views with their own dtype; the rest are bytes.
_TENSOR_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I8": np.int8, "I16": np.int16, "I32": np.int32, "I64": np.int64}


class ReaderField:
    """One key (or tensor info): `offset` in the file, `name`, and, built on first use,
    `parts` (numpy views of the file's bytes), `data` (the indices of the value's parts) and
    `types` (the value type, then an array's element type)."""

    __slots__ = ("offset", "name", "_reader", "_built")

    def __init__(self, offset: int, name: str, reader: "GGUFReader", built=None):
        self.offset, self.name, self._reader, self._built = offset, name, reader, built

    def _get(self):
        if self._built is None:
            self._built = self._reader._field_parts(self.offset)
        return self._built

    @property
    def parts(self) -> list[np.ndarray]:
        return self._get()[0]

    @property
    def data(self) -> list[int]:
        return self._get()[1]

    @property
    def types(self) -> list[GGUFValueType]:
        return self._get()[2]

    def contents(self, index_or_slice: int | slice = slice(None)) -> Any:
        """The value as Python objects: a number, str, or list (of `index_or_slice`)."""
        if not self.types:
            return None
        decode = lambda part: bytes(part).decode("utf-8", errors="surrogateescape")  # noqa: E731
        main = self.types[0]
        if main == GGUFValueType.ARRAY:
            if len(self.types) == 1:  # an empty array
                return [] if isinstance(index_or_slice, slice) else [][index_or_slice]
            sub = self.types[-1]
            picked = self.data[index_or_slice]
            if sub == GGUFValueType.STRING:
                return [decode(self.parts[i]) for i in picked] if isinstance(index_or_slice, slice) else decode(self.parts[picked])
            if sub == GGUFValueType.ARRAY:
                raise NotImplementedError("nested arrays: read them with ggufkit.open(...).metadata")
            return [self.parts[i].tolist()[0] for i in picked] if isinstance(index_or_slice, slice) else self.parts[picked].tolist()[0]
        if main == GGUFValueType.STRING:
            return decode(self.parts[-1])
        return self.parts[-1].tolist()[0]

    def __repr__(self) -> str:
        return f"ReaderField(offset={self.offset}, name={self.name!r})"


class ReaderTensor:
    __slots__ = ("name", "tensor_type", "shape", "n_elements", "n_bytes", "data_offset", "data", "field")

    def __init__(self, name, tensor_type, shape, n_elements, n_bytes, data_offset, data, field):
        self.name, self.tensor_type, self.shape, self.n_elements = name, tensor_type, shape, n_elements
        self.n_bytes, self.data_offset, self.data, self.field = n_bytes, data_offset, data, field

    def __repr__(self) -> str:
        return f"ReaderTensor(name={self.name!r}, tensor_type={self.tensor_type.name}, shape={self.shape.tolist()})"


class GGUFReader:
    """gguf-py's GGUFReader, on ggufkit: `fields` (OrderedDict name -> ReaderField, the
    header's GGUF.version, GGUF.tensor_count and GGUF.kv_count first), `tensors` (a list of
    ReaderTensor), `data` (the file as a numpy memmap), `alignment`, `data_offset`,
    `byte_order` ("I" as this machine stores numbers, "S" swapped), get_field(), get_tensor().
    mode "r" maps read-only; "r+" and "c" as numpy.memmap takes them."""

    def __init__(self, path: os.PathLike[str] | str, mode: str = "r"):
        if "://" in os.fspath(path):
            raise ValueError(f"{path}: gguf-py's reader maps a local file (ggufkit.open reads URLs)")
        with builtins.open(path, "rb") as head:
            start = head.read(8)
        if start[:4] != b"GGUF":
            raise ValueError(f"{path}: not a plain GGUF file (gguf-py's reader maps one; ggufkit.open reads .gguf.zst too)")
        if int.from_bytes(start[4:8], "little") == 1 or int.from_bytes(start[4:8], "big") == 1:
            raise ValueError(f"{path}: GGUF version 1, which gguf-py's reader refuses (ggufkit.open reads it)")
        self._file = _open_file(path)  # ggufkit's strict open: a bad file raises here
        if len(self._file.parts) > 1:
            raise ValueError(f"{path}: a part of a split set; gguf-py's reader reads one file (ggufkit.open reads the set)")
        self.data = np.memmap(path, mode=mode)
        version = self.data[4:8].view(np.uint32)[0]
        self.byte_order = "S" if version & 0xFFFF == 0 else "I"
        self._order = ">" if (self.byte_order == "S") == (np.little_endian) else "<"
        self.alignment = self._file.alignment
        self.fields: OrderedDict[str, ReaderField] = OrderedDict()
        head = self._view(4, np.uint32, 1), self._view(8, np.uint64, 1), self._view(16, np.uint64, 1)
        for offset, name, part in ((4, "GGUF.version", head[0]), (8, "GGUF.tensor_count", head[1]), (16, "GGUF.kv_count", head[2])):
            kind = GGUFValueType.UINT32 if name == "GGUF.version" else GGUFValueType.UINT64
            self.fields[name] = ReaderField(offset, name, self, ([part], [0], [kind]))
        native = self._file.metadata._native
        for key in native.keys():
            self.fields[key] = ReaderField(native.offset_of(key), key, self)
        self.tensors: list[ReaderTensor] = []
        self.data_offset = None
        for t in self._file.tensors.values():
            info = t._info()
            if self.data_offset is None:
                self.data_offset = t.offset - info["data_offset"]
            dims = np.array(list(reversed(t.shape)), dtype=np.uint64)
            qtype = GGMLQuantizationType(t.type.id)
            dtype = _TENSOR_DTYPES.get(qtype.name)
            np_dims = tuple(t.shape)
            if dtype is None:
                dtype = np.uint8
                np_dims = np_dims[:-1] + (np_dims[-1] // t.type.block_size * t.type.type_size,)
            count = int(np.prod(np_dims)) if np_dims else 1
            field = ReaderField(info["file_offset"], t.name, self)
            self.tensors.append(ReaderTensor(t.name, qtype, dims, t.n_elements, t.nbytes, t.offset,
                                             self._view(t.offset, dtype, count).reshape(np_dims), field))
        if self.data_offset is None:
            self.data_offset = len(self.data)

    def get_field(self, key: str) -> ReaderField | None:
        return self.fields.get(key)

    def get_tensor(self, idx: int) -> ReaderTensor:
        return self.tensors[idx]

    # ---- parts, laid out as gguf-py lays them out -------------------------------------------
    def _view(self, offset: int, dtype, count: int) -> np.ndarray:
        dt = np.dtype(dtype)
        if dt.itemsize > 1:
            dt = dt.newbyteorder(self._order)
        return self.data[offset:offset + dt.itemsize * count].view(dt)

    def _value_parts(self, offset: int, vtype: int):
        """(size, parts, data indices, types) of one value of `vtype` at `offset`."""
        if vtype in _SCALARS:
            part = self._view(offset, _SCALARS[vtype], 1)
            return part.nbytes, [part], [0], [GGUFValueType(vtype)]
        if vtype == GGUFValueType.STRING:
            length = self._view(offset, np.uint64, 1)
            chars = self._view(offset + 8, np.uint8, int(length[0]))
            return 8 + chars.nbytes, [length, chars], [1], [GGUFValueType.STRING]
        if vtype == GGUFValueType.ARRAY:
            etype = self._view(offset, np.uint32, 1)
            count = self._view(offset + 4, np.uint64, 1)
            parts, idxs, types = [etype, count], [], [GGUFValueType.ARRAY]
            at, n, e = offset + 12, int(count[0]), int(etype[0])
            if e in _SCALARS:  # one piece per element, as gguf-py has them, cut from one view
                whole = self._view(at, _SCALARS[e], n)
                parts += [whole[i:i + 1] for i in range(n)]
                idxs = list(range(2, 2 + n))
                if n:  # gguf-py takes the element type from the first element
                    types.append(GGUFValueType(e))
                return 12 + whole.nbytes, parts, idxs, types
            for i in range(n):
                size, sub_parts, sub_idxs, sub_types = self._value_parts(at, e)
                if i == 0:
                    types += sub_types
                idxs += [len(parts) + j for j in sub_idxs]
                parts += sub_parts
                at += size
            return at - offset, parts, idxs, types
        raise ValueError(f"unknown value type {vtype} at offset {offset}")

    def _field_parts(self, offset: int):
        key_length = self._view(offset, np.uint64, 1)
        key = self._view(offset + 8, np.uint8, int(key_length[0]))
        at = offset + 8 + key.nbytes
        vtype = self._view(at, np.uint32, 1)
        if self._is_tensor_info(offset):  # name, n_dims, dims, type, offset (gguf-py's tensor field)
            n_dims = vtype
            dims = self._view(at + 4, np.uint64, int(n_dims[0]))
            raw_type = self._view(at + 4 + dims.nbytes, np.uint32, 1)
            data_offset = self._view(at + 8 + dims.nbytes, np.uint64, 1)
            return [key_length, key, n_dims, dims, raw_type, data_offset], [1, 3, 4, 5], []
        _, parts, idxs, types = self._value_parts(at + 4, int(vtype[0]))
        return [key_length, key, vtype] + parts, [3 + i for i in idxs], types

    def _is_tensor_info(self, offset: int) -> bool:
        if not hasattr(self, "_tensor_offsets"):
            self._tensor_offsets = {t.field.offset for t in self.tensors}
        return offset in self._tensor_offsets
