#!/usr/bin/env bash
# Installs ggufkit from a build folder into a temporary prefix, then builds and runs the
# consumer project against it with find_package(ggufkit), and again with add_subdirectory()
# on the source tree. Usage: run.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
export CCACHE_BASEDIR="$src"

echo "== cmake --install into $tmp/prefix"
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/lib/cmake/ggufkit/ggufkitConfig.cmake" || test -f "$tmp/prefix/lib64/cmake/ggufkit/ggufkitConfig.cmake"
test -f "$tmp/prefix/include/gguf/file.h"
test -f "$tmp/prefix/include/quant/quant.h"
test -f "$tmp/prefix/include/kernels/kernels.h"
test -f "$tmp/prefix/include/infer/tokenizer.h"
test -f "$tmp/prefix/include/convert/safetensors.h"
test -x "$tmp/prefix/bin/gguf"
# Nothing private was installed.
if find "$tmp/prefix/include" -name '*.cpp' -o -name 'iq_grids.h' -o -name 'table.h' -o -name 'vocab.h' -o -name 'unicode_data.h' | grep -q .; then
  echo "private files were installed under include/" >&2
  exit 1
fi

echo "== find_package(ggufkit)"
cmake -S "$src/tests/consumer" -B "$tmp/installed" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$tmp/prefix" "${launcher[@]}" >/dev/null
cmake --build "$tmp/installed" >/dev/null
"$tmp/installed/consumer" "$tmp/installed.gguf"

echo "== add_subdirectory(ggufkit)"
# (Without CUDA: the installed run above links kernels_cuda where the build has it; compiling
# it again here would only cost time.)
# The build folder is a sibling of BUILD_DIR: ccache keys hold include paths relative to the
# compiler's working folder, so at the same depth the library's objects are cache hits of the
# top-level build's instead of a second full compile.
added="$(dirname "$build")/.consumer-added-$$"
trap 'rm -rf "$tmp" "$added"' EXIT
cmake -S "$src/tests/consumer" -B "$added" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DGGUFKIT_SOURCE_DIR="$src" -DGGUFKIT_CUDA=OFF "${launcher[@]}" >/dev/null
cmake --build "$added" >/dev/null
"$added/consumer" "$tmp/added.gguf"
# A project that adds ggufkit gets no tests, tools' tests or fixtures of ours.
test ! -e "$added/ggufkit/tests"
