#!/usr/bin/env bash
# gguf-view's headless mode under Xvfb: renders a fixture model's views to PNG files and
# checks each has the window's size and is not blank (png_check). Exits 77 (ctest: skipped)
# where no X server can be started.
#   viewer_screenshot.sh GGUF_VIEW PNG_CHECK GGUF_FIXTURES GGUF WORKDIR
set -euo pipefail
view=$1 check=$2 fixtures=$3 gguf=$4 work=$5

if ! command -v xvfb-run >/dev/null || ! command -v Xvfb >/dev/null; then
  echo "SKIPPED: viewer-screenshot: xvfb-run or Xvfb not found (Debian: xvfb, installed by scripts/setup)"
  exit 77
fi
# In a sanitized build, LeakSanitizer would report Mesa's own allocations at exit: its driver
# is unloaded by then, so they cannot be told apart by name (only "<unknown module>").
# Address and undefined-behaviour errors still fail the test; the model layer's leaks are
# checked by the viewer suite.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
rm -rf "$work"
mkdir -p "$work"
"$fixtures" "$work/fixtures" >/dev/null
model=$work/fixtures/demo-llama-mixed.gguf
# The same model in two types, for the comparison view.
"$gguf" requant "$work/fixtures/demo-llama-f16.gguf" "$work/demo-q8_0.gguf" Q8_0 >/dev/null

# Xvfb starting is what can fail on a machine without the pieces; tell that apart from a
# viewer failure by starting one first.
if ! xvfb-run -a -s "-screen 0 1280x800x24" true 2>"$work/xvfb.log"; then
  echo "SKIPPED: viewer-screenshot: no X server could be started: $(head -c 300 "$work/xvfb.log")"
  exit 77
fi

shot() {  # NAME ARGS...: one screenshot of 1000x700, checked
  local name=$1
  shift
  echo "== $name: gguf-view $*"
  xvfb-run -a -s "-screen 0 1280x800x24" "$view" "$@" --size 1000x700 --timeout 60 --screenshot "$work/$name.png"
  "$check" "$work/$name.png" 1000 700
}

shot overview "$model"
shot metadata "$model" --panel metadata
shot tensors "$model" --panel tensors
shot mix "$model" --panel mix
shot values "$model" --select blk.0.ffn_down.weight --panel values --log
shot heatmap "$model" --select blk.0.attn_q.weight --panel heatmap
shot error "$model" --select blk.0.attn_q.weight --panel error --error-type q4_K
shot compare "$work/fixtures/demo-llama-f16.gguf" --select blk.1.attn_q.weight --panel error --compare "$work/demo-q8_0.gguf"

# A bad file is shown in the window as an error, never a crash (exit 0: the window showed it),
# and a headless run reports it.
malformed=("$work"/fixtures/malformed/*.gguf)
bad=${malformed[0]}
echo "== malformed file: $bad"
if xvfb-run -a -s "-screen 0 1280x800x24" "$view" "$bad" --size 1000x700 --screenshot "$work/bad.png" 2>"$work/bad.err"; then
  echo "gguf-view exited 0 on a malformed file in headless mode; expected 1 with the error"
  exit 1
fi
grep -q "$(basename "$bad")" "$work/bad.err" || { echo "the error does not name the file:"; cat "$work/bad.err"; exit 1; }
# The window holds a few lines of text: fewer colours than a view with plots.
"$check" "$work/bad.png" 1000 700 6 0.99

# A tensor that is not there is an error too.
if xvfb-run -a -s "-screen 0 1280x800x24" "$view" "$model" --select no.such.tensor --size 1000x700 --screenshot "$work/none.png" 2>"$work/none.err"; then
  echo "gguf-view exited 0 for a missing tensor"
  exit 1
fi
grep -q "no tensor named no.such.tensor" "$work/none.err" || { cat "$work/none.err"; exit 1; }
echo "viewer-screenshot: all views rendered"
