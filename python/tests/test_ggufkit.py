"""Tests of the ggufkit Python package against the C++ tools and the reference data.

Run by ctest (test "python") with PYTHONPATH at the build's python/ folder, GGUF_BIN the
gguf command, GGUF_FIXTURES_BIN the fixture generator and GGUFKIT_SHARED the reference data
folder (tests that need it skip when it is absent).
"""
import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import ggufkit

GGUF = os.environ.get("GGUF_BIN", "gguf")
SHARED = Path(os.environ.get("GGUFKIT_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared"))
REF_QUANT = SHARED / "ref" / "quant"


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory):
    """The generated test files (demo models, every value type, a split set)."""
    out = tmp_path_factory.mktemp("fixtures")
    subprocess.run([os.environ.get("GGUF_FIXTURES_BIN", "gguf-fixtures"), str(out)], check=True)
    return out


def inspect_json(path):
    return json.loads(subprocess.run([GGUF, "inspect", "--json", "--full", str(path)], check=True, capture_output=True).stdout)


def model_files(fixtures):
    return sorted(p for p in fixtures.glob("*.gguf"))


def test_every_fixture_opens_with_the_keys_and_tensors_gguf_inspect_reports(fixtures):
    files = model_files(fixtures)
    assert len(files) >= 6
    for path in files:
        _matches_inspect(path)


@pytest.mark.skipif(not (SHARED / "ref" / "gguf").is_dir(), reason="the shared reference data is absent")
def test_every_reference_file_opens_with_the_keys_and_tensors_gguf_inspect_reports():
    """llama.cpp's own files: its quantizations of the tiny model, the vocabulary files, the
    split set llama-gguf-split wrote."""
    files = sorted((SHARED / "ref" / "gguf").rglob("*.gguf"))
    assert len(files) > 20
    for path in files:
        _matches_inspect(path)


def test_a_gguf_zst_opens_and_reads_as_the_file_it_was_made_from(fixtures, tmp_path):
    src = fixtures / "demo-llama-mixed.gguf"
    packed = tmp_path / "demo.gguf.zst"
    subprocess.run([GGUF, "compress", str(src), str(packed), "--threads", "2"], check=True, capture_output=True)
    with ggufkit.open(src) as a, ggufkit.open(packed) as b:
        assert list(a.metadata) == list(b.metadata) and list(a.tensors) == list(b.tensors)
        for name, t in a.tensors.items():
            assert np.array_equal(t.raw(), b.tensors[name].raw()), name
            assert np.array_equal(t.numpy(), b.tensors[name].numpy()), name


def _matches_inspect(path):
    ref = inspect_json(path)
    with ggufkit.open(path) as f:
        assert f.version == ref["version"], path
        assert f.alignment == ref["alignment"], path
        assert list(f.metadata) == [m["key"] for m in ref["metadata"]], path
        for m in ref["metadata"]:
            ours = f.metadata[m["key"]]
            assert f.metadata.type_of(m["key"]).split("[")[0] == m["type"], (path, m["key"])
            if isinstance(m["value"], dict):  # an array
                assert len(ours) == m["value"]["count"], (path, m["key"])
                values = ours.tolist() if hasattr(ours, "tolist") else list(ours)
                expected = m["value"]["values"]
                if m["value"]["element_type"] in ("f32", "f64"):
                    assert all(_same_float(a, b) for a, b in zip(values, expected)), (path, m["key"])
                elif m["value"]["element_type"] != "arr":
                    assert values == expected, (path, m["key"])
            elif isinstance(ours, float):
                assert _same_float(ours, m["value"]), (path, m["key"])
            else:
                assert ours == m["value"], (path, m["key"])
        assert list(f.tensors) == [t["name"] for t in ref["tensors"]], path
        for t in ref["tensors"]:
            ours = f.tensors[t["name"]]
            assert str(ours.type) == t["type"] and ours.type == t["type"]
            assert ours.shape == tuple(reversed(t["shape"])), "numpy order: the row (ne[0]) last"
            assert ours.n_elements == t["elements"] and ours.nbytes == t["bytes"]
            assert ours.offset == t["file_offset"] and ours.part == t["part"]


def _same_float(a, b):
    if isinstance(b, str):  # JSON has no NaN or infinity: the tools print them as strings
        return str(a).lower().lstrip("+") in (b.lower(), b.lower().replace("inf", "infinity")) or (math.isnan(a) and "nan" in b.lower())
    return a == pytest.approx(b, rel=1e-6, abs=0)


def test_a_split_set_opens_from_any_part_with_every_tensor(fixtures):
    parts = sorted(fixtures.glob("demo-split-*.gguf"))
    assert len(parts) == 3
    whole = inspect_json(parts[0])
    with ggufkit.open(parts[1]) as f:
        assert len(f.parts) == 3
        assert list(f.tensors) == [t["name"] for t in whole["tensors"]]
        assert {t.part for t in f.tensors.values()} == {0, 1, 2}
        for t in f.tensors.values():
            assert t.numpy().shape == t.shape


def test_big_endian_metadata_reads_as_the_little_endian_file_does(fixtures):
    with ggufkit.open(fixtures / "all-value-types.gguf") as le, ggufkit.open(fixtures / "all-value-types-be.gguf") as be:
        assert list(le.metadata) == list(be.metadata)
        for key in le.metadata:
            assert _same_value(le.metadata[key], be.metadata[key]), key


def _same_value(a, b):
    if isinstance(a, np.ndarray):
        return a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=") and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, ggufkit.StringArray):
        return a.tolist() == b.tolist()
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) == type(b) and a == b


def test_tensor_views_share_the_mapping_and_are_read_only(fixtures):
    with ggufkit.open(fixtures / "demo-llama-f32.gguf") as f:
        t = next(t for t in f.tensors.values() if t.type == "f32" and len(t.shape) == 2)
        raw, values = t.raw(), t.numpy()
        assert raw.dtype == np.uint8 and raw.size == t.nbytes
        assert np.shares_memory(raw, values), "an f32 tensor's numpy() is a view of the file, not a copy"
        assert not raw.flags.writeable and not values.flags.writeable
        with pytest.raises(ValueError):
            values[0, 0] = 1
        assert np.array_equal(values.view(np.uint8).reshape(-1), raw)
    # The views keep the file mapped after the File is closed and dropped.
    del f
    assert values.sum() == values.sum()


def test_string_arrays_are_lazy_sequences(fixtures):
    with ggufkit.open(fixtures / "demo-llama-f16.gguf") as f:
        tokens = f.metadata["tokenizer.ggml.tokens"]
        assert isinstance(tokens, ggufkit.StringArray)
        every = tokens.tolist()
        assert len(tokens) == len(every) > 3
        assert tokens[1] == every[1] and tokens[-1] == every[-1]
        assert tokens[1:4] == every[1:4]
        with pytest.raises(IndexError):
            tokens[len(every)]


def _load(path, dtype):
    return np.fromfile(path, dtype=dtype)


def _reference_types():
    if not REF_QUANT.is_dir():
        return []
    return sorted(p.stem for p in (REF_QUANT / "random").glob("*.bin"))


@pytest.mark.skipif(not REF_QUANT.is_dir(), reason=f"the shared reference data ({REF_QUANT}) is absent")
@pytest.mark.parametrize("type_name", _reference_types())
def test_dequantize_equals_the_reference_bit_for_bit(type_name):
    """Random blocks (NaN and Inf scales included) and quantized rows, against llama.cpp's
    dequantization of the same bytes: the same bits, or both NaN."""
    t = ggufkit.tensor_type(type_name)
    cases = [(REF_QUANT / "random" / f"{type_name}.bin", REF_QUANT / "random" / f"{type_name}.f32")]
    cases += [(b, b.with_suffix(".f32")) for b in sorted((REF_QUANT / "roundtrip").glob(f"{type_name}.*.bin"))]
    for bin_path, f32_path in cases:
        blob, want = _load(bin_path, np.uint8), _load(f32_path, np.float32)
        row = t.block_size * (len(blob) // t.type_size) // (4 if "roundtrip" in str(bin_path) else 1)
        got = ggufkit.dequantize(blob, type_name, (want.size // row, row), threads=2).reshape(-1)
        same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
        assert same.all(), f"{bin_path.name}: {np.count_nonzero(~same)} values differ"


def test_quantize_round_trips_every_quantizable_type_within_its_bits():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 512)).astype(np.float32)
    importance = rng.lognormal(size=512).astype(np.float32)
    tried = 0
    for t in ggufkit.types():
        if not t.quantized or t.name in ("q8_1", "q8_K"):
            continue
        try:
            q = ggufkit.quantize(x, t, importance=importance, threads=2)
        except ValueError as e:
            assert "cannot" in str(e) or "not" in str(e), (t.name, str(e))
            continue
        tried += 1
        assert q.dtype == np.uint8 and q.size == x.shape[0] * x.shape[1] // t.block_size * t.type_size
        y = ggufkit.dequantize(q, t, x.shape)
        rel = float(np.sqrt(np.mean((y - x) ** 2)) / np.sqrt(np.mean(x**2)))
        bits = 8 * t.type_size / t.block_size
        assert rel < 2.0 ** (1.5 - bits) * 4, (t.name, rel)  # error shrinks with the bits
        # Threads never change the bytes.
        assert np.array_equal(q, ggufkit.quantize(x, t, importance=importance, threads=1)), t.name
    assert tried >= 25


def test_quantize_scales_keyword_chooses_the_scale_fit():
    """scales="least-squares" changes IQ2_XS's default (halfway) scales and nothing else of its
    bytes; "unbiased" changes Q4_K's; an unknown name is refused."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 512)).astype(np.float32)
    importance = rng.lognormal(size=512).astype(np.float32)
    default = ggufkit.quantize(x, "iq2_xs", importance=importance)
    least = ggufkit.quantize(x, "iq2_xs", importance=importance, scales="least-squares")
    t = ggufkit.tensor_type("iq2_xs")
    d_bytes = np.zeros(t.type_size, dtype=bool)
    d_bytes[:2] = True  # a block's f16 d leads it
    differ = (default != least).reshape(-1, t.type_size)
    assert differ.any() and not (differ & ~d_bytes).any()
    assert not np.array_equal(ggufkit.quantize(x, "q4_K", importance=importance, scales="unbiased"),
                              ggufkit.quantize(x, "q4_K", importance=importance))
    with pytest.raises(ValueError, match="scales must be default, least-squares or unbiased"):
        ggufkit.quantize(x, "q4_K", scales="halfway")


def test_quantize_matches_the_gguf_library_through_a_requant(fixtures, tmp_path):
    """Tensor bytes that gguf requant writes for Q8_0 equal ggufkit.quantize of the same values."""
    out = tmp_path / "q8.gguf"
    subprocess.run([GGUF, "requant", str(fixtures / "demo-llama-f32.gguf"), str(out), "Q8_0", "--quiet"], check=True)
    with ggufkit.open(fixtures / "demo-llama-f32.gguf") as src, ggufkit.open(out) as dst:
        checked = 0
        for name, t in dst.tensors.items():
            if t.type != "q8_0":
                continue
            assert np.array_equal(t.raw(), ggufkit.quantize(src.tensors[name].numpy(), "q8_0")), name
            assert np.array_equal(t.numpy(), ggufkit.dequantize(t.raw(), "q8_0", t.shape)), name
            checked += 1
        assert checked > 0


def test_errors_are_python_exceptions_with_the_library_messages(fixtures, tmp_path):
    x = np.ones((2, 64), dtype=np.float32)
    x[1, 5] = np.nan
    with pytest.raises(ValueError, match=r"row 1.*column 5|column 5.*row 1"):
        ggufkit.quantize(x, "q4_0")
    with pytest.raises(ValueError, match="block"):
        ggufkit.quantize(np.ones((1, 40), dtype=np.float32), "q4_0")
    with pytest.raises(ValueError, match="unknown tensor type"):
        ggufkit.quantize(np.ones((1, 32), dtype=np.float32), "q4_9")
    with pytest.raises(ValueError, match="bytes"):
        ggufkit.dequantize(np.zeros(17, dtype=np.uint8), "q4_0", (1, 32))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(3))
    with pytest.raises(ggufkit.Error, match="bad.gguf"):
        ggufkit.open(bad)
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        ggufkit.open(tmp_path / "missing.gguf")
    assert issubclass(ggufkit.Error, ValueError)


def test_check_reports_what_gguf_check_json_reports(fixtures):
    paths = model_files(fixtures) + sorted((fixtures / "faults").glob("*.gguf"))
    assert len(paths) > 8
    for path in paths:
        run = subprocess.run([GGUF, "check", "--json", "--max-findings", "100000", str(path)], capture_output=True)
        if run.returncode == 2:  # unreadable: the same refusal here
            with pytest.raises(ggufkit.Error):
                ggufkit.check(path)
            continue
        assert ggufkit.check(path) == json.loads(run.stdout), path
    assert ggufkit.check(fixtures / "demo-llama-mixed.gguf", data=False)["data_checked"] is False


def test_requant_writes_the_file_gguf_requant_writes_and_reports_progress(fixtures, tmp_path):
    src = fixtures / "demo-llama-f16.gguf"
    ours, theirs = tmp_path / "py.gguf", tmp_path / "cli.gguf"
    seen = []
    report = ggufkit.requant(src, ours, "Q4_K_M", threads=2, progress=lambda i, n, name, done, total: seen.append((i, n, name)))
    subprocess.run([GGUF, "requant", str(src), str(theirs), "Q4_K_M", "--threads", "2", "--quiet"], check=True)
    assert ours.read_bytes() == theirs.read_bytes()
    assert report["outputs"] == [str(ours)] and report["tensors"] == len(seen) > 0
    assert [s[0] for s in seen] == list(range(1, len(seen) + 1)) and all(s[1] == len(seen) for s in seen)
    with ggufkit.open(ours) as f:
        assert f.metadata["general.file_type"] == 15  # MOSTLY_Q4_K_M

    # An exception from the progress callback stops the run and leaves nothing behind.
    stopped = tmp_path / "stopped.gguf"

    def stop(i, n, name, done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ggufkit.requant(src, stopped, "Q8_0", progress=stop)
    assert set(tmp_path.iterdir()) == {ours, theirs}, "no output and no temporary file"

    # direct_io=False writes through the page cache: the same bytes; scales as in quantize().
    cached = tmp_path / "cached.gguf"
    ggufkit.requant(src, cached, "Q4_K_M", threads=2, direct_io=False)
    assert cached.read_bytes() == ours.read_bytes()
    unbiased = tmp_path / "unbiased.gguf"
    ggufkit.requant(src, unbiased, "Q4_K_M", threads=2, scales="unbiased")
    subprocess.run([GGUF, "requant", str(src), str(theirs), "Q4_K_M", "--threads", "2", "--quiet", "--unbiased-scales"], check=True)
    assert unbiased.read_bytes() == theirs.read_bytes() != ours.read_bytes()
    with pytest.raises(ValueError, match="scales must be"):
        ggufkit.requant(src, tmp_path / "never.gguf", "Q4_K_M", scales="nope")
    assert not (tmp_path / "never.gguf").exists()
    with pytest.raises(ValueError, match="unknown type"):
        ggufkit.requant(src, stopped, "Q4_K_Q")


def test_error_reports_what_gguf_error_json_reports(fixtures):
    path = fixtures / "demo-llama-f32.gguf"
    for type_name in ("q4_0", "q8_0"):
        cli = json.loads(subprocess.run([GGUF, "error", str(path), "--type", type_name, "--json"], check=True, capture_output=True).stdout)
        ours = ggufkit.error(path, type_name, threads=2)
        assert ours == cli, type_name
        assert ours["tensors"] and ours["total"]["rmse"] > 0
    only = ggufkit.error(path, "q8_0", tensors=r"attn_q")
    assert [t["name"] for t in only["tensors"]] == [n for n in ggufkit.open(path).tensors if "attn_q" in n]
    with pytest.raises(ValueError, match="cannot quantize|unknown tensor type"):
        ggufkit.error(path, "q4_K_M")


@pytest.mark.skipif(not (SHARED / "ref" / "gguf" / "llama-quantize" / "tiny.imatrix.dat").exists(), reason="the shared reference data is absent")
def test_error_with_an_importance_matrix_reports_the_weighted_rmse(tmp_path):
    ref = SHARED / "ref" / "gguf" / "llama-quantize"
    model, imatrix = ref / "tiny-F16.gguf", ref / "tiny.imatrix.dat"
    cli = json.loads(subprocess.run([GGUF, "error", str(model), "--type", "q4_K", "--imatrix", str(imatrix), "--json"],
                                    check=True, capture_output=True).stdout)
    ours = ggufkit.error(model, "q4_K", imatrix=imatrix)
    assert ours == cli
    assert any(t["imatrix"] and t["weighted_rmse"] > 0 for t in ours["tensors"])


def test_the_writer_copies_a_file_byte_for_byte(fixtures, tmp_path):
    """Every key (with its type) and every tensor of a file, added in order: the same bytes."""
    for name in ("demo-llama-mixed.gguf", "all-value-types.gguf", "demo-llama-f16.gguf"):
        src = fixtures / name
        out = tmp_path / name
        with ggufkit.open(src) as f, ggufkit.Writer(out) as w:
            for key in f.metadata:
                t = f.metadata.type_of(key)
                if t.startswith("arr[arr"):
                    w.add_from(f, key)  # nested arrays, as they are
                else:
                    w.add(key, f.metadata[key], t)  # through Python, with its type named
            for t in f.tensors.values():
                w.add_tensor_from(t)
        assert out.read_bytes() == src.read_bytes(), name


def test_the_writer_writes_arrays_and_quantizes_tensors(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 256)).astype(np.float32)
    out = tmp_path / "built.gguf"
    with ggufkit.Writer(out, arch="llama") as w:
        w.add("general.name", "built")
        w.add("llama.block_count", 1)
        w.add("demo.u64", 7, type="u64")
        w.add("demo.scores", np.arange(4, dtype=np.float32))
        w.add("demo.ints", [1, -2, 3])
        w.add("demo.words", ["a", "b"])
        w.add_tensor("blk.0.ffn_up.weight", x, "q8_0")
        w.add_tensor("blk.0.attn_norm.weight", x[0])
        w.add_tensor("blk.0.ffn_down.weight", x.astype(np.float16))
    with ggufkit.open(out) as f:
        assert f.metadata["general.architecture"] == "llama" and f.metadata["llama.block_count"] == 1
        assert f.metadata.type_of("llama.block_count") == "u32" and f.metadata.type_of("demo.u64") == "u64"
        assert f.metadata.type_of("demo.scores") == "arr[f32]" and f.metadata.type_of("demo.ints") == "arr[i32]"
        assert list(f.metadata["demo.ints"]) == [1, -2, 3] and f.metadata["demo.words"].tolist() == ["a", "b"]
        assert f.tensors["blk.0.ffn_up.weight"].type == "q8_0"
        assert np.array_equal(f.tensors["blk.0.ffn_up.weight"].raw(), ggufkit.quantize(x, "q8_0"))
        assert np.array_equal(f.tensors["blk.0.attn_norm.weight"].numpy(), x[0])
        assert np.array_equal(f.tensors["blk.0.ffn_down.weight"].numpy(dtype=np.float16), x.astype(np.float16))
    # Incomplete as a llama model (gguf check says what is missing), but no key has a wrong type.
    assert not [f for f in ggufkit.check(out)["findings"] if "has type" in f["message"]]


def test_the_writer_refuses_what_gguf_check_calls_an_error_and_leaves_nothing(tmp_path):
    out = tmp_path / "bad.gguf"
    w = ggufkit.Writer(out, arch="llama")
    w.add("general.file_type", "Q4_K_M")  # llama.cpp reads a u32 there
    assert w.key_type_errors() == ["general.file_type: has type str, expected u32"]
    with pytest.raises(ValueError, match="general.file_type: has type str, expected u32"):
        w.write()
    assert not out.exists()
    with pytest.raises(ValueError, match="out of range for u8"):
        w.add("demo.small", 300, type="u8")
    with pytest.raises(TypeError, match="needs a type"):
        w.add("demo.mixed", [1, "a"])
    with pytest.raises(ValueError, match="values take"):
        w._w.add_tensor("t", np.zeros(10, dtype=np.uint8), "q8_0", [1, 32])
    with pytest.raises(TypeError):
        w.add_tensor("t", np.zeros((2, 32), dtype=np.int32))
    w.write(check=False)
    assert {"severity": "error", "where": "general.file_type", "message": "has type str, expected u32"} in ggufkit.check(out)["findings"]
    # A failed write (the folder is gone) leaves no temporary file behind either.
    with pytest.raises(Exception):
        ggufkit.Writer(tmp_path / "missing" / "x.gguf").write()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.gguf"]


# ---- ggufkit.compat: gguf-py's reader ---------------------------------------------------------
# gguf-py is not installed here; the expectations are gguf-py's documented layout of a field
# (the key's length and bytes, the value type, then the value's pieces: a string's length and
# bytes, an array's element type, count and each element), applied to what `gguf inspect
# --json --full` reports of the same file.

def _expected_layout(m):
    """(number of parts, data indices, type names) of a key as gguf-py lays it out."""
    t, v = m["type"], m["value"]
    if t == "str":
        return 5, [4], ["STRING"]
    if t != "arr":
        return 4, [3], [_VALUE_TYPE_NAMES[t]]
    elem, n = v["element_type"], v["count"]
    element = ["STRING" if elem == "str" else "ARRAY" if elem == "arr" else _VALUE_TYPE_NAMES[elem]] if n else []  # from the first element
    if elem == "str":
        return 5 + 2 * n, [6 + 2 * i for i in range(n)], ["ARRAY"] + element
    if elem == "arr":
        return None, None, ["ARRAY"] + element
    return 5 + n, [5 + i for i in range(n)], ["ARRAY"] + element


_VALUE_TYPE_NAMES = {"u8": "UINT8", "i8": "INT8", "u16": "UINT16", "i16": "INT16", "u32": "UINT32", "i32": "INT32", "f32": "FLOAT32",
                     "bool": "BOOL", "u64": "UINT64", "i64": "INT64", "f64": "FLOAT64"}


_REFERENCE_Q4_K_M = SHARED / "ref" / "gguf" / "llama-quantize" / "tiny-Q4_K_M.imatrix.gguf"


@pytest.mark.parametrize("name", ["demo-llama-mixed.gguf", "all-value-types.gguf", "all-value-types-be.gguf", "demo-llama-f32.gguf", "llama.cpp's tiny-Q4_K_M"])
def test_compat_reader_fields_and_tensors_are_laid_out_as_gguf_py_lays_them_out(fixtures, name):
    from ggufkit.compat import GGMLQuantizationType, GGUFReader, GGUFValueType

    if name.startswith("llama.cpp"):
        if not _REFERENCE_Q4_K_M.exists():
            pytest.skip(f"{_REFERENCE_Q4_K_M} is absent")
        path = _REFERENCE_Q4_K_M
    else:
        path = fixtures / name
    ref = inspect_json(path)
    reader = GGUFReader(path)
    assert list(reader.fields)[:3] == ["GGUF.version", "GGUF.tensor_count", "GGUF.kv_count"]
    assert reader.fields["GGUF.version"].parts[0][0] == ref["version"]
    assert reader.fields["GGUF.tensor_count"].contents() == ref["tensor_count"] and reader.fields["GGUF.kv_count"].contents() == ref["kv_count"]
    assert reader.byte_order == ("S" if ref["byte_order"] == "big" else "I") and reader.alignment == ref["alignment"]
    assert list(reader.fields)[3:] == [m["key"] for m in ref["metadata"]]
    for m in ref["metadata"]:
        field = reader.get_field(m["key"])
        n_parts, data, types = _expected_layout(m)
        assert field.offset == m["offset"] and field.name == m["key"]
        assert [GGUFValueType(t).name for t in field.types][:2] == types, m["key"]
        assert bytes(field.parts[1]).decode() == m["key"] and field.parts[0][0] == len(m["key"].encode())
        if n_parts is None:
            continue
        assert len(field.parts) == n_parts and field.data == data, m["key"]
        # The patterns scripts use: parts[data[0]] for a scalar, bytes(...) for strings.
        if m["type"] == "str":
            assert str(bytes(field.parts[field.data[0]]), encoding="utf-8") == m["value"]
        elif m["type"] == "arr":
            if m["value"]["element_type"] == "str":
                values = [str(bytes(field.parts[i]), encoding="utf-8") for i in field.data]
            else:
                values = [field.parts[i][0] for i in field.data]
            assert len(values) == m["value"]["count"]
            if m["value"]["element_type"] not in ("f32", "f64"):
                assert [v.item() if hasattr(v, "item") else v for v in values] == m["value"]["values"], m["key"]
            got, expected = field.contents(), [v.item() if hasattr(v, "item") else v for v in values]
            assert len(got) == len(expected) and all(a == b or (a != a and b != b) for a, b in zip(got, expected)), m["key"]
        elif m["type"] not in ("f32", "f64"):
            assert field.parts[field.data[0]][0] == m["value"] and field.contents() == m["value"], m["key"]
    with ggufkit.open(path) as f:
        assert [t.name for t in reader.tensors] == [t["name"] for t in ref["tensors"]]
        for rt, t in zip(reader.tensors, ref["tensors"]):
            assert rt.tensor_type == GGMLQuantizationType[t["type"].upper()] and rt.tensor_type.name == t["type"].upper()
            assert rt.shape.dtype == np.uint64 and rt.shape.tolist() == t["shape"], "ggml order: ne[0] first"
            assert (rt.n_elements, rt.n_bytes, rt.data_offset) == (t["elements"], t["bytes"], t["file_offset"])
            assert bytes(rt.field.parts[rt.field.data[0]]).decode() == t["name"]
            ours = f.tensors[t["name"]]
            if t["type"] in ("f32", "f16") and ref["byte_order"] == "little":
                assert rt.data.dtype == (np.float32 if t["type"] == "f32" else np.float16) and rt.data.shape == ours.shape
                assert np.array_equal(rt.data, ours.numpy(dtype=rt.data.dtype))
            elif t["type"] not in ("f32", "f16", "f64", "i8", "i16", "i32", "i64"):
                assert rt.data.dtype == np.uint8 and rt.data.shape == ours.shape[:-1] + (ours.shape[-1] // ours.type.block_size * ours.type.type_size,)
                assert np.array_equal(rt.data.reshape(-1), ours.raw())


def test_compat_reader_runs_gguf_py_s_dump_pattern(fixtures):
    """The loop gguf-py's examples print models with, on our reader, against ggufkit's own API."""
    from ggufkit.compat import GGUFReader, GGUFValueType

    path = fixtures / "demo-llama-mixed.gguf"
    reader = GGUFReader(path)
    lines = []
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if field.types[0] == GGUFValueType.STRING:
            lines.append(f"{key}={str(bytes(field.parts[-1]), encoding='utf-8')}")
        elif field.types[0] == GGUFValueType.ARRAY:
            lines.append(f"{key}=[{len(field.data)} x {GGUFValueType(field.types[-1]).name}]")
        else:
            lines.append(f"{key}={field.parts[-1][0]}")
    for t in reader.tensors:
        lines.append(f"{t.name} {t.tensor_type.name} {'x'.join(str(d) for d in t.shape)} {t.n_bytes}")
    with ggufkit.open(path) as f:
        want = []
        for key in f.metadata:
            v, t = f.metadata[key], f.metadata.type_of(key)
            if t.startswith("arr["):
                element = {"str": "STRING", **_VALUE_TYPE_NAMES}[t[4:-1]]
                want.append(f"{key}=[{len(v)} x {element}]")
            elif isinstance(v, float):
                want.append(f"{key}={np.float32(v) if t == 'f32' else v}")
            else:
                want.append(f"{key}={v}")
        for t in f.tensors.values():
            want.append(f"{t.name} {t.type.name.upper()} {'x'.join(str(d) for d in reversed(t.shape))} {t.nbytes}")
    assert lines == want


def test_numpy_of_every_type_equals_gguf_requant_s_dequantization_to_f32(tmp_path):
    """A file with one tensor of every quantizable type (written by ggufkit.Writer), converted
    to F32 by `gguf requant`: each tensor's numpy() has exactly those bits."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((4, 512)) * rng.lognormal(size=(4, 1))).astype(np.float32)
    importance = rng.lognormal(size=512).astype(np.float32)
    src, f32 = tmp_path / "all.gguf", tmp_path / "all-f32.gguf"
    written = []
    with ggufkit.Writer(src) as w:
        for t in ggufkit.types():
            if not t.quantized or t.name in ("q8_1", "q8_K"):
                continue
            try:
                w.add_tensor(f"blk.{len(written)}.ffn_up.weight", x, t, importance=importance)
                written.append(t.name)
            except ValueError:
                continue  # a type ggufkit does not quantize to
    assert len(written) >= 25
    subprocess.run([GGUF, "requant", str(src), str(f32), "F32", "--allow-requantize", "--pure", "--quiet"], check=True)
    with ggufkit.open(src) as a, ggufkit.open(f32) as b:
        for i, name in enumerate(written):
            tensor = f"blk.{i}.ffn_up.weight"
            ours, theirs = a.tensors[tensor].numpy(threads=2), b.tensors[tensor]
            assert a.tensors[tensor].type == name and theirs.type == "f32", name
            assert np.array_equal(ours.view(np.uint32), theirs.numpy().view(np.uint32)), name


def test_f16_and_bf16_tensors_are_views_in_their_own_dtype(fixtures):
    with ggufkit.open(fixtures / "demo-llama-mixed.gguf") as f:
        for type_name, dtype in (("f16", np.float16), ("bf16", np.uint16)):
            t = next(t for t in f.tensors.values() if t.type == type_name)
            view = t.numpy(dtype=dtype)
            assert view.dtype == dtype and view.shape == t.shape and np.shares_memory(view, t.raw()), type_name
            values = t.numpy()
            assert values.dtype == np.float32 and not np.shares_memory(values, t.raw())
            if type_name == "bf16":  # bf16 bits are the top half of the f32's
                assert np.array_equal((values.view(np.uint32) >> 16).astype(np.uint16), view)
            else:
                assert np.array_equal(values, view.astype(np.float32))


def test_review_findings_raise_or_round_trip(fixtures, tmp_path):
    """Closed files, strided buffers, numpy float64 scalars, strings that are not UTF-8,
    version-1 files in the compat reader."""
    from ggufkit.compat import GGUFReader

    f = ggufkit.open(fixtures / "demo-llama-mixed.gguf")
    q = f.tensors["blk.0.attn_v.weight"]  # q8_0
    with pytest.raises(ValueError, match="not contiguous"):
        ggufkit.dequantize(np.stack([q.raw(), q.raw()], axis=1)[:, 0], "q8_0", q.shape)
    assert np.array_equal(ggufkit.dequantize(np.ascontiguousarray(q.raw()), "q8_0", q.shape), q.numpy())
    out = tmp_path / "w.gguf"
    w = ggufkit.Writer(out)
    f.close()
    with pytest.raises(ValueError, match="closed"):
        w.add_from(f, "general.name")
    w.add("demo.f64", np.float64(0.1))
    w.add("demo.bytes", b"\xff\xfeok".decode("utf-8", errors="surrogateescape"))
    w.write()
    with ggufkit.open(out) as g:
        assert g.metadata.type_of("demo.f64") == "f64" and g.metadata["demo.f64"] == 0.1
        assert g.metadata["demo.bytes"].encode("utf-8", errors="surrogateescape") == b"\xff\xfeok"
    with pytest.raises(ValueError, match="version 1"):
        GGUFReader(fixtures / "all-value-types-v1.gguf")
    with pytest.raises(ValueError, match="unknown tensor type id"):
        ggufkit.tensor_type(-1)
    assert ggufkit.tensor_type("q4_0") != -1
