#!/usr/bin/env bash
# The studio's one entry point.
#   ./launch.sh [--host H] [--port P]   install on first run, then serve http://127.0.0.1:8501
#   ./launch.sh test [pytest args]      install (with test tools), then run the whole test suite
#   ./launch.sh doctor [--quick|--json] diagnostics (test_system.py)
#   ./launch.sh api [--host H] [--port P]  the HTTP API on http://127.0.0.1:8502 (docs at /docs; docs/API.md)
#   ./launch.sh fleet --manifest FILE [--address auto|local] [--gpus-per-worker 1] [--out DIR] [--json]
#                                       a batch on a Ray cluster, one worker per GPU (docs/SCALE.md)
set -euo pipefail
cd "$(dirname "$0")"

PY=.venv/bin/python
LOG_DIR=outputs/.studio/logs

need_python() {
  if ! command -v python3 >/dev/null 2>&1; then
    echo "python3 (3.10 or newer) is required: install it from your package manager." >&2
    exit 1
  fi
}

cmd=${1:-serve}
case "$cmd" in
  test)
    shift
    need_python
    python3 setup.py --with-test-tools --quiet
    export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
    exec "$PY" -m pytest "$@"
    ;;
  doctor)
    shift
    need_python
    python3 setup.py --quiet
    exec "$PY" test_system.py "$@"
    ;;
  api)
    shift
    need_python
    python3 setup.py --quiet
    mkdir -p "$LOG_DIR"
    export HF_HUB_DISABLE_TELEMETRY=1 STUDIO_LOG_FILE="$LOG_DIR/api.log"
    exec "$PY" -m backend api "$@"
    ;;
  fleet)
    shift
    need_python
    python3 setup.py --with-fleet --quiet
    mkdir -p "$LOG_DIR"
    export HF_HUB_DISABLE_TELEMETRY=1 STUDIO_LOG_FILE="$LOG_DIR/fleet.log"
    exec "$PY" -m backend fleet "$@"
    ;;
  serve|--host|--port|-h|--help)
    if [ $# -gt 0 ] && [ "$1" = serve ]; then shift; fi
    host=${STUDIO_HOST:-127.0.0.1}
    port=${STUDIO_PORT:-8501}
    while [ $# -gt 0 ]; do
      case "$1" in
        --host) host=${2:?--host needs a value}; shift 2 ;;
        --port) port=${2:?--port needs a value}; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (see ./launch.sh --help)" >&2; exit 2 ;;
      esac
    done
    need_python
    python3 setup.py
    extra=()
    case "$host" in
      127.*|localhost|::1) ;;
      *) echo "WARNING: serving on $host:$port — anyone who can reach this machine on that address can use the studio and see your videos." >&2
         # A named address is the only Host header allowed; 0.0.0.0 can be reached under any name.
         if [ "$host" = 0.0.0.0 ] || [ "$host" = "::" ]; then extra=(--server.allowedHosts "*")
         else extra=(--server.allowedHosts "$host"); fi ;;
    esac
    mkdir -p "$LOG_DIR"
    echo "Studio: http://$host:$port   (logs: $LOG_DIR/studio.log; Ctrl+C to stop)"
    export HF_HUB_DISABLE_TELEMETRY=1 STUDIO_LOG_FILE="$LOG_DIR/studio.log"
    exec "$PY" -m streamlit run app.py --server.address "$host" --server.port "$port" "${extra[@]}"
    ;;
  *)
    echo "usage: ./launch.sh [--host H] [--port P] | ./launch.sh test [pytest args] | ./launch.sh doctor" \
         "| ./launch.sh api [--host H] [--port P] | ./launch.sh fleet --manifest FILE [options]" >&2
    exit 2
    ;;
esac
