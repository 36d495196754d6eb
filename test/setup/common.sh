# Shared by the install scripts (sourced, from the repository root): where things are cached
# and linked, and small helpers for progress output and failure.
CACHE_ROOT="${AWS_SECRET_INJECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aws-secret-injector}"
BIN_DIR="$PWD/.cache/bin"
LOG_DIR="$PWD/.cache/logs"
mkdir -p "$CACHE_ROOT" "$BIN_DIR" "$LOG_DIR"
die() { echo "error: $*" >&2; exit 1; }
step() { echo "==> $*"; }
# link NAME TARGET: expose a cached binary as .cache/bin/NAME
link() { ln -sfn "$2" "$BIN_DIR/$1"; }
# need CMD HINT: fail with HINT unless CMD is on PATH
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH: $2"; }
# run_logged LABEL LOGFILE CMD...: run CMD with its output in LOGFILE, print a heartbeat every
# 30 s so a long build shows progress, and on failure print the log's tail and the reason.
run_logged() {
  local label=$1 log=$2
  shift 2
  local start=$SECONDS
  "$@" >"$log" 2>&1 &
  local pid=$!
  while ! wait_for "$pid" 30; do
    echo "    ... $label: $((SECONDS - start)) s"
  done
  if ! wait "$pid"; then
    tail -n 40 "$log" >&2
    die "$label failed after $((SECONDS - start)) s (full log: $log)"
  fi
  echo "    $label: done in $((SECONDS - start)) s"
}
# wait_for PID SECONDS: true once PID has exited, false if it is still running after SECONDS
wait_for() {
  local i
  for ((i = 0; i < $2; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 1
  done
  ! kill -0 "$1" 2>/dev/null
}
# cache_lock NAME: hold $CACHE_ROOT/.NAME.lock on fd 9 until the script exits (or closes fd 9), so
# that checkouts or test runs installing at once build each part once: one builds, the others
# wait and then find it cached.
cache_lock() {
  need flock "install util-linux"
  exec 9>"$CACHE_ROOT/.$1.lock"
  if ! flock -n 9; then
    step "another install holds $CACHE_ROOT/.$1.lock; waiting for it"
    flock 9
  fi
}
# go_at_least MIN: true if the machine's Go is at least MIN (e.g. 1.26.0)
go_at_least() {
  local have
  have=$(go env GOVERSION | sed 's/^go//; s/[^0-9.].*//')
  [ "$(printf '%s\n%s\n' "$1" "$have" | sort -V | head -n 1)" = "$1" ]
}
