#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`.
#
#   docker/ensure-engine.sh
#
# - Engine answers already: exit 0 at once (does nothing else).
# - Otherwise, as root on Debian/Ubuntu: install docker.io with apt when dockerd
#   is missing, start it (systemctl when systemd is PID 1, else
#   `nohup dockerd >/var/log/clawdspace-dockerd.log 2>&1 &`) and wait up to
#   CLAWDSPACE_ENGINE_WAIT seconds (default 60) for `docker info`.
# - Never starts a second dockerd: a dockerd that is already running (or still
#   starting) is waited for, and concurrent runs of this script are serialised
#   with a lock.
# - Where it cannot do this (not root, not Linux/Debian/Ubuntu, install or start
#   fails) it says what to do and exits 1.
set -euo pipefail

WAIT_S=${CLAWDSPACE_ENGINE_WAIT:-60}
DOCKERD_LOG=${CLAWDSPACE_DOCKERD_LOG:-/var/log/clawdspace-dockerd.log}
LOCK_FILE=/run/lock/clawdspace-ensure-engine.lock
PROG=ensure-engine

log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
fail() {
  printf '[%s] ERROR: %s\n' "$PROG" "$1" >&2
  shift
  local line
  for line in "$@"; do printf '[%s]   %s\n' "$PROG" "$line" >&2; done
  exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

engine_answers() {
  have docker && timeout 20 docker info >/dev/null 2>&1
}

# Whether PID is a live process (a zombie, e.g. our own exited child, is not).
pid_alive() {
  local stat state
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  state=${stat##*) }
  state=${state%% *}
  case "$state" in Z | X | x) return 1 ;; esac
  return 0
}

# PIDs of live dockerd processes (no dependency on procps). Zombies do not
# count: in a container whose PID 1 does not reap, a dead dockerd stays one.
dockerd_pids() {
  local d comm
  for d in /proc/[0-9]*; do
    comm=$(cat "$d/comm" 2>/dev/null) || continue
    if [ "$comm" = dockerd ] && pid_alive "${d#/proc/}"; then
      printf '%s\n' "${d#/proc/}"
    fi
  done
  return 0
}

systemd_is_init() {
  [ -d /run/systemd/system ] || [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]
}

show_log_tail() {
  local file=$1
  if [ -s "$file" ]; then
    # dockerd logs a lot of gRPC chatter: show its errors, then how it ended.
    # (Its last words, e.g. "failed to start daemon: ...", are not time= lines.)
    local errors
    errors=$(awk '/level=(error|fatal)/ || (!/^time=/ && NF)' "$file" | tail -n 10)
    if [ -n "$errors" ]; then
      log "errors in $file:"
      printf '%s\n' "$errors" | sed 's/^/    /' >&2
    fi
    log "last lines of $file:"
    tail -n 8 "$file" | sed 's/^/    /' >&2
  fi
}

# ---------------------------------------------------------------- fast path
if engine_answers; then
  log "Docker engine answers."
  exit 0
fi

# ------------------------------------------------- cases we must not handle
if have docker; then
  info_err=$(timeout 20 docker info 2>&1 >/dev/null || true)
  case "$info_err" in
    *"permission denied"*)
      fail "A Docker engine runs, but this user ($(id -un)) may not use its socket." \
        "Either run as root (sudo), or add the user to the docker group:" \
        "  sudo usermod -aG docker $(id -un)    # then log out and in again" \
        "docker said: $(printf '%s' "$info_err" | tail -n 1)"
      ;;
  esac
  if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST}" != unix:///var/run/docker.sock ] \
     && [ "${DOCKER_HOST}" != unix:///run/docker.sock ]; then
    fail "DOCKER_HOST=$DOCKER_HOST does not answer, and this script only starts the local engine." \
      "Start the engine at $DOCKER_HOST, or unset DOCKER_HOST to use the local one."
  fi
  ctx=$(docker context show 2>/dev/null || echo default)
  if [ "$ctx" != default ]; then
    fail "The docker CLI uses context '$ctx', which does not answer; this script only starts the local engine." \
      "Start that engine, or switch back with: docker context use default"
  fi
fi

if [ "$(uname -s)" != Linux ]; then
  fail "No Docker engine answers, and this is not Linux ($(uname -s))." \
    "Install and start Docker Desktop (or another Docker engine), then run this again."
fi

os_id=unknown os_like=
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  os_id=$(. /etc/os-release && printf '%s' "${ID:-unknown}")
  # shellcheck disable=SC1091
  os_like=$(. /etc/os-release && printf '%s' "${ID_LIKE:-}")
fi
case " $os_id $os_like " in
  *" debian "* | *" ubuntu "*) ;;
  *)
    fail "No Docker engine answers, and this machine is not Debian/Ubuntu (ID=$os_id), so this script will not install one." \
      "Install Docker Engine for your distribution (https://docs.docker.com/engine/install/)," \
      "start it, check that 'docker info' works, then run this again."
    ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  if have dockerd; then
    hint="sudo $0    (or: sudo systemctl start docker)"
  else
    hint="sudo $0    (installs docker.io with apt, then starts it)"
  fi
  fail "No Docker engine answers, and starting one needs root (you are $(id -un))." \
    "Run: $hint"
fi

# ------------------------------------------ one instance at a time from here
mkdir -p "${LOCK_FILE%/*}"
exec 9>"$LOCK_FILE"
if have flock; then
  if ! flock -n 9; then
    log "another ensure-engine run is in progress; waiting for it"
    flock -w 300 9 || fail "timed out waiting for the lock $LOCK_FILE"
  fi
  if engine_answers; then
    log "Docker engine answers."
    exit 0
  fi
fi

# ---------------------------------------------------------------- install
if ! have dockerd; then
  have apt-get || fail "apt-get not found on this Debian/Ubuntu machine." \
    "Install the docker.io package by hand, then run this again."
  log "dockerd is not installed: installing docker.io with apt-get (this takes a minute)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get update 9>&-; then
    fail "apt-get update failed." "Fix the apt sources or the network, then run this again."
  fi
  if ! apt-get install -y docker.io 9>&-; then
    fail "apt-get install -y docker.io failed (see apt's messages above)." \
      "If docker-ce (Docker's own packages) is installed, start it instead: systemctl start docker"
  fi
  have dockerd || fail "docker.io was installed, but there is still no dockerd on PATH ($PATH)."
  if ! have docker; then
    # Newer Debian releases ship the client separately.
    apt-get install -y docker-cli >/dev/null 2>&1 9>&- || true
    have docker || fail "dockerd is installed but the docker client is not." \
      "Install it (apt-get install docker-cli, or docker-ce-cli), then run this again."
  fi
fi

# ---------------------------------------------------------------- start
started_pid=
running=$(dockerd_pids | tr '\n' ' ')
if [ -n "${running// /}" ]; then
  # The package's postinst, a service manager or a person started one already.
  log "dockerd is already running or starting (pid ${running% }); not starting another, waiting for it"
elif systemd_is_init && have systemctl; then
  log "starting the docker service with systemctl"
  if ! systemctl start docker 9>&-; then
    journalctl -u docker --no-pager -n 25 >&2 2>/dev/null || true
    fail "systemctl start docker failed (journal above)." \
      "See: systemctl status docker; journalctl -u docker"
  fi
else
  log "no systemd here: starting dockerd in the background, log in $DOCKERD_LOG"
  mkdir -p "${DOCKERD_LOG%/*}"
  if have setsid; then
    # Own session, so it outlives this script and its terminal.
    nohup setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
  else
    nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
  fi
  started_pid=$!
fi

# ---------------------------------------------------------------- wait
deadline=$((SECONDS + WAIT_S))
while :; do
  if engine_answers; then
    log "Docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))."
    exit 0
  fi
  if [ -n "$started_pid" ] && ! pid_alive "$started_pid"; then
    show_log_tail "$DOCKERD_LOG"
    fail "dockerd exited right after starting (log above, full log: $DOCKERD_LOG)." \
      "Fix what the log says (storage driver, iptables, cgroups...), then run this again."
  fi
  if [ -z "$started_pid" ] && [ -z "$(dockerd_pids)" ] && ! systemd_is_init; then
    show_log_tail "$DOCKERD_LOG"
    show_log_tail /var/log/docker.log
    fail "the dockerd that was starting has exited." \
      "Run this again to start a new one, or look at the logs above."
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    if systemd_is_init; then
      journalctl -u docker --no-pager -n 25 >&2 2>/dev/null || true
    else
      show_log_tail "$DOCKERD_LOG"
      show_log_tail /var/log/docker.log
    fi
    fail "the Docker engine did not answer within ${WAIT_S}s." \
      "Check the log above; 'docker info' shows what the client sees."
  fi
  sleep 1
done
