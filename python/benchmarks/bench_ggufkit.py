"""Benchmark of the Python package (prints figures, asserts nothing).

    PYTHONPATH=build/release/python /usr/bin/python3 python/benchmarks/bench_ggufkit.py [VOCAB.gguf] [MODEL.gguf]

1. ggufkit.open + reading every key's value of a vocabulary file (default: the deepseek-llm one in
   ../shared/ref/gguf/vocab), median of 5, beside the 4.46 s gguf-py's reader took on it
   as recorded in issue 19 on this machine type.
2. Tensor.numpy() GB/s (quantized bytes in) on the Q4_K tensors of MODEL (default: a Q4_K
   tensor made here, 4096 x 4096), beside ggufkit.dequantize on the same bytes (no file),
   numpy's copy of the f32 result, the cost of a new f32 array of that size, and the C++
   kernel's own speed (gguf bench, in cache). A new 64 MiB array's page faults bound both
   Python calls on this VM; the binding adds no copy of its own (numpy() and dequantize()
   write the result once, where the kernel puts it).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import ggufkit

GGUF_PY_SECONDS = 4.46  # issue 19: gguf-py's GGUFReader on the deepseek-llm vocabulary


def median_time(fn, runs=5):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def touch_all(path, last=False):
    with ggufkit.open(path) as f:
        for key in f.metadata:
            v = f.metadata[key]
            if last and isinstance(v, ggufkit.StringArray):
                v[len(v) - 1]  # a lazy array's last element: finds every element's offset


def main():
    root = Path(__file__).resolve().parents[2]
    vocab = Path(sys.argv[1]) if len(sys.argv) > 1 else root / ".." / "shared" / "ref" / "gguf" / "vocab" / "ggml-vocab-deepseek-llm.gguf"
    if vocab.exists():
        t = median_time(lambda: touch_all(vocab))
        print(f"open + every key of {vocab.name}: {t * 1e3:.2f} ms (gguf-py, recorded: {GGUF_PY_SECONDS:.2f} s; {GGUF_PY_SECONDS / t:,.0f}x faster)")
        t = median_time(lambda: touch_all(vocab, last=True))
        print(f"the same, and each string array's last element: {t * 1e3:.2f} ms ({GGUF_PY_SECONDS / t:,.0f}x faster)")
        t = median_time(lambda: ggufkit.open(vocab).metadata["tokenizer.ggml.tokens"].tolist())
        print(f"every token of it as a list of str: {t * 1e3:.2f} ms")
        from ggufkit.compat import GGUFReader

        t = median_time(lambda: GGUFReader(vocab))
        print(f"ggufkit.compat.GGUFReader of it: {t * 1e3:.2f} ms ({GGUF_PY_SECONDS / t:,.0f}x gguf-py's; parts built when read)")
        t = median_time(lambda: [f.parts for f in GGUFReader(vocab).fields.values()], runs=3)
        print(f"the same, and every field's parts built as gguf-py builds them: {t * 1e3:.0f} ms ({GGUF_PY_SECONDS / t:,.1f}x)")
    else:
        print(f"{vocab}: absent; vocabulary benchmark skipped")

    rng = np.random.default_rng(1)
    if len(sys.argv) > 2:
        f = ggufkit.open(sys.argv[2])
        tensors = [t for t in f.tensors.values() if t.type == "q4_K"]
        raw = [t.raw() for t in tensors]
    else:
        x = rng.standard_normal((4096, 4096)).astype(np.float32)
        q = ggufkit.quantize(x, "q4_K")
        tensors, raw = None, [q]
    nbytes = sum(r.size for r in raw)
    for threads in (1, 0):
        label = "1 thread" if threads == 1 else "all cores"
        if tensors:
            t = median_time(lambda: [tt.numpy(threads=threads) for tt in tensors])
            print(f"Tensor.numpy() q4_K, {label}: {nbytes / t / 1e9:.2f} GB/s in")
        shape = (4096, 4096)
        t2 = median_time(lambda: [ggufkit.dequantize(r, "q4_K", shape if tensors is None else (r.size // 144 * 256 // 4096, 4096), threads=threads) for r in raw])
        print(f"ggufkit.dequantize q4_K, {label}: {nbytes / t2 / 1e9:.2f} GB/s in")
    y = ggufkit.dequantize(raw[0], "q4_K", (raw[0].size // 144 * 256 // 4096, 4096))
    t3 = median_time(lambda: y.copy())
    print(f"yardstick: numpy copy of the f32 result: {y.nbytes / t3 / 1e9:.2f} GB/s out")
    t4 = median_time(lambda: np.ones(y.shape, dtype=np.float32))
    print(f"yardstick: a new f32 array of that size, written once: {y.nbytes / t4 / 1e9:.2f} GB/s out "
          f"(dequantize above: {nbytes * (256 * 4 / 144) / t2 / 1e9:.2f} GB/s out)")
    gguf = shutil.which(os.environ.get("GGUF_BIN", "gguf")) or str(Path(__file__).resolve().parents[2] / "build" / "release" / "gguf")
    if Path(gguf).exists():
        out = subprocess.run([gguf, "bench", "--types", "q4_K", "--threads", "1", "--json"], capture_output=True, text=True)
        if out.returncode == 0:
            for r in json.loads(out.stdout):
                if r["op"] == "dequant":
                    print(f"C++ kernel (gguf bench, {r['isa']}, 1 thread, in cache): {r['gbps_in']:.2f} GB/s in")


if __name__ == "__main__":
    main()
