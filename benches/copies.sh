#!/usr/bin/env bash
# Bytes copied by memcpy/memmove per proxied request, and the sizes copied most: what moving
# futures, requests and responses between layers costs. callgrind counts the instructions of
# those copies but not their sizes, and on this VM they cost more time than their instructions
# suggest (they touch cold memory).
#
#   SECS=2 benches/copies.sh [dockhand-executable...]     (default: the release build; needs root)
#
# glibc picks its memmove by CPU (memcpy runs the same code): the probes go on the AVX, EVEX and
# AVX-512 variants that the static binary carries, whichever this CPU runs; MEMMOVE names others.
#
# Each executable routes the bench backend container by discovery and gets wrk load (8
# connections) for SECS seconds while a uprobe on glibc's memmove (statically linked into the
# binary) records the size of every copy, from before the load starts until after it ends.
# Requests come from dockhand's own `dockhand_requests_total`. Prints copies and bytes per request, then the ten sizes that add up
# to the most bytes. The uprobe slows dockhand down about tenfold: the figures are per request,
# not a speed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-2}
memmove=${MEMMOVE:-__memmove_avx_unaligned_erms __memmove_evex_unaligned_erms __memmove_avx512_unaligned_erms}
work=$(mktemp -d); name=dockhand-copies-$$; pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  perf probe -q -d 'probe_*:*' 2>/dev/null || true
  docker rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=benches/common.sh
source benches/common.sh
need wrk wrk
need perf linux-perf
build_release_and_backend_image
[ $# -gt 0 ] || set -- "$bin/dockhand"
docker run -d --name "$name" -e VIRTUAL_HOST=bench.local --expose 80 --no-healthcheck \
  dockhand-bench-backend:latest >/dev/null
url=http://127.0.0.1:18950/
served() {
  curl -s http://127.0.0.1:18952/metrics \
    | awk '/^dockhand_requests_total\{.*vhost="bench.local"/ { n += $NF } END { printf "%d\n", n }'
}
for exe in "$@"; do
  DISABLE_ACCESS_LOGS=true DOCKHAND_LOG=warn "$exe" --bind 127.0.0.1 --https-method noredirect \
    --http-port 18950 --https-port 18951 --admin 127.0.0.1:18952 \
    --certs-dir "$work" --htpasswd-dir "$work" --acme-webroot "$work" >"$work/log" 2>&1 &
  pid=$!
  wait_routed "$url" 100 0.1
  perf probe -q -d 'probe_*:*' 2>/dev/null || true
  for variant in $memmove; do
    perf probe -q -x "$exe" --add "$variant size=%dx:u64" 2>/dev/null || true
  done
  events=()
  while read -r event _; do events+=(-e "$event"); done < <(perf probe -l 2>/dev/null)
  ((${#events[@]} > 0)) || { echo "no memmove probe could be added ($memmove)" >&2; exit 1; }
  # The probes record from before the load starts until after it ends: every request is seen.
  perf record -q "${events[@]}" -p "$pid" -o "$work/perf.data" 2>/dev/null &
  perf_pid=$!
  sleep 2
  before=$(served)
  wrk -t1 -c8 -d "${secs}s" -H 'Host: bench.local' "$url" >/dev/null
  after=$(served)
  kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  perf probe -q -d 'probe_*:*'
  echo "$(basename "$exe"):"
  perf script -i "$work/perf.data" -F trace 2>/dev/null | awk -F'size=' -v requests=$((after - before)) '
    { size = $2 + 0; calls++; total += size; bytes[size] += size; count[size]++ }
    END {
      printf "  %d requests: %.1f copies, %.0f bytes per request\n", requests, calls / requests, total / requests
      for (s in bytes) printf "%d %d %d\n", bytes[s], s, count[s] | "sort -rn | head -10 | awk '\''{ printf \"  %6d bytes: %5.1f copies per request\\n\", $2, $3 / " requests " }'\''"
    }'
done
