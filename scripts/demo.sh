#!/usr/bin/env bash
# Brings usherd up watching a throwaway local booking API: installs what is
# missing, builds, starts both on loopback, and cleans everything up on Ctrl-C.
#
#   scripts/demo.sh
#
# Environment: USHER_BUILD_DIR (default build), USHER_DEMO_SKIP_SETUP=1 to
# skip installing and building, USHERD to use another usherd binary.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${USHER_BUILD_DIR:-build}
if [ "${USHER_DEMO_SKIP_SETUP:-0}" != 1 ]; then
  scripts/install-deps.sh demo
  cmake -S . -B "$build_dir"
  cmake --build "$build_dir" -j2
fi
usherd=${USHERD:-$build_dir/bin/usherd}
[ -x "$usherd" ] || { echo "demo: no usherd at $usherd" >&2; exit 1; }

# The port asked for when it is free, else any free one.
pick_port() {
  python3 -c '
import socket, sys
for port in (int(sys.argv[1]), 0):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(s.getsockname()[1])
        break' "$1"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/usher-demo.XXXXXX")
pids=()
cleanup() {
  trap - EXIT INT TERM
  local pid _
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
  echo "demo: stopped usherd and the booking API, removed $tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() { # url seconds
  local _
  for _ in $(seq $(($2 * 10))); do
    curl -fsS -o /dev/null --noproxy '*' "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: $1 did not answer within $2 s" >&2
  return 1
}

api_port=$(pick_port 8089)
python3 examples/sandbox/booking_api.py --port "$api_port" >"$tmp/booking-api.log" 2>&1 &
pids+=($!)
api="http://127.0.0.1:$api_port"
wait_for "$api/health" 15 || { cat "$tmp/booking-api.log" >&2; exit 1; }

usher_port=$(pick_port 9469)
sed "s/127\.0\.0\.1:8089/127.0.0.1:$api_port/g" examples/demo.yml >"$tmp/usher.yml"
# the pack (alerts/, rules/): its alerts evaluate against the demo's probes
printf 'rule_files: ["%s/alerts/*.yml", "%s/rules/*.yml"]\n' "$PWD" "$PWD" >>"$tmp/usher.yml"
mkdir -p "$tmp/state"
"$usherd" --config "$tmp/usher.yml" --listen "127.0.0.1:$usher_port" \
  --state-dir "$tmp/state" --log-format text &
pids+=($!)
usher="http://127.0.0.1:$usher_port"
wait_for "$usher/-/ready" 30

cat <<EOF

usherd is watching the booking API at $api
  metrics:  $usher/metrics
  config:   $tmp/usher.yml

Try:
  curl -s $usher/metrics | grep '^probe_success'
  curl -s -H 'Accept: application/openmetrics-text' $usher/metrics | grep -A3 'TYPE probe_duration'
  curl -s $api/api/events
  # make the booking API fail half of its requests, and watch probe_success drop:
  curl -s -X PUT -d '{"fail_rate": 0.5}' $api/admin/fail-rate
  # put it right again:
  curl -s -X PUT -d '{"fail_rate": 0}' $api/admin/fail-rate

Press Ctrl-C to stop both and clean up.
EOF

# Returns when usherd ends (or a signal arrives, which runs the traps).
wait "${pids[1]}"
