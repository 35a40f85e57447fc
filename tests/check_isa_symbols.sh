#!/usr/bin/env bash
# A family file compiled with AVX2 or AVX-512 flags must define no symbol the linker could
# pick for code that runs on other CPUs: no inline function or template instantiation of
# external linkage (weak symbols), and no global function outside its own namespace. (The
# DW.ref.__gxx_personality_v0 word some builds emit is data, identical in every object.)
# Usage: check_isa_symbols.sh LIBRARY.a
set -euo pipefail
lib=$1
bad=$(nm -C --defined-only "$lib" | awk '
  /^$/ { next }
  /:$/ { member = $0; isa = ""; if (member ~ /_avx512\.cpp\.o:$/) isa = "avx512"; else if (member ~ /_avx2\.cpp\.o:$/) isa = "avx2"; next }
  isa == "" { next }
  {
    kind = $2; name = $0; sub(/^[0-9a-f]+ . /, "", name)
    if (name ~ /^DW\.ref\./) next  # the exception personality pointer every C++ object may carry: data, the same everywhere
    if (kind ~ /^[WVu]$/) { print member " weak: " name; next }
    if (kind ~ /^[TDBR]$/ && index(name, "kernels::" isa "::") != 1) print member " global outside kernels::" isa ": " name
  }')
members=$(nm -C --defined-only "$lib" | grep -c -E '_avx(2|512)\.cpp\.o:$' || true)
if [ "$members" -eq 0 ]; then
  echo "no AVX2 or AVX-512 family files found in $lib" >&2
  exit 1
fi
if [ -n "$bad" ]; then
  echo "ISA-compiled symbols that could leak into other paths:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "$members family files checked: no weak or foreign global symbols"
