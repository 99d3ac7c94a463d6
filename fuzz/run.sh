#!/usr/bin/env bash
# Fuzzes TinyServer.Protocol with AFL++ and SharpFuzz for a bounded time, then replays what it found.
#   fuzz/run.sh [SECONDS]      (default 600)
# Installs afl++ with apt-get (through sudo when not root) and the sharpfuzz dotnet tool if they are missing.
# Everything it makes goes to fuzz/out/ (git-ignored): the instrumented build, the tool, AFL's findings. A later run
# resumes from the queue AFL kept; delete fuzz/out/findings to start over from fuzz/corpus.
# Exit status: 0 when AFL found no crash and no hang, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
out=fuzz/out
sharpfuzz_version=2.3.0

if ! command -v afl-fuzz >/dev/null 2>&1; then
  bash tests/install-peers.sh afl++ # Waits for another package manager, as the tests' install does.
fi

if [ ! -x "$out/tools/sharpfuzz" ]; then
  echo "installing SharpFuzz.CommandLine $sharpfuzz_version"
  dotnet tool install SharpFuzz.CommandLine --version "$sharpfuzz_version" --tool-path "$out/tools" >/dev/null
fi

# A fresh Release build; only the library under test gets AFL's coverage instrumentation. An uninstrumented copy
# replays the findings (instrumented code only runs under afl-fuzz).
rm -rf "$out/bin" "$out/replay"
dotnet publish fuzz/TinyServer.Fuzz -c Release -o "$out/bin" --nologo -v q --tl:off
cp -r "$out/bin" "$out/replay"
"$out/tools/sharpfuzz" "$out/bin/TinyServer.Protocol.dll"

mkdir -p "$out/findings"
echo "fuzzing for $seconds s (log: $out/afl.log)"
# .NET needs no memory limit (-m none); AFL's binary check does not understand 'dotnet x.dll'; containers have no
# CPU frequency scaling to check. AFL_AUTORESUME continues from the last queue.
status=0
AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_AUTORESUME=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  afl-fuzz -i fuzz/corpus -o "$out/findings" -V "$seconds" -t 5000 -m none -- "$(command -v dotnet)" "$out/bin/TinyServer.Fuzz.dll" \
  >"$out/afl.log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  tail -n 40 "$out/afl.log"
  echo "afl-fuzz failed (exit $status)"
  exit "$status"
fi

stats="$out/findings/default/fuzzer_stats"
for key in run_time execs_done execs_per_sec corpus_count bitmap_cvg saved_crashes saved_hangs; do
  grep -E "^$key +:" "$stats" || true
done

mapfile -t found < <(find "$out/findings/default/crashes" "$out/findings/default/hangs" -type f -name 'id:*' 2>/dev/null | sort)
if [ "${#found[@]}" -eq 0 ]; then
  echo "no crash, no hang"
  exit 0
fi

echo "${#found[@]} crash or hang input(s); replaying them:"
dotnet "$out/replay/TinyServer.Fuzz.dll" "${found[@]}" || true
exit 1
