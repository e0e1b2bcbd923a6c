#!/usr/bin/env bash
# Trigger failovers in the license-free stack (compose/sim.yml) through the simulated
# members' control ports (published on 127.0.0.1:9201..9204). Each step is one
# `curl -d ROLE http://HOST:PORT/sim/role`, so the same can be typed by hand.
#
#   compose/failover.sh status             role of every member
#   compose/failover.sh ap1                planned switch: primary -> backup, backup -> primary
#   compose/failover.sh ap1 crash          primary goes down (connections refused), backup takes over
#   compose/failover.sh ap1 hang           primary hangs (accepts, never answers), backup takes over
#   compose/failover.sh set ap1b down      any role (primary|backup|down|hang) for one member
#   compose/failover.sh restore            ap1a/ap2a primary, ap1b/ap2b backup
#
# Watch it from a client (nc localhost 1972), the status page (http://localhost:9090/) or
# Prometheus (http://localhost:9091/). SIM_AP1A=host:port (and _AP1B, _AP2A, _AP2B) point
# at other control ports; FAILOVER_GAP=seconds between the old primary leaving and the
# new one taking over (default 1; a real mirror takes a few seconds too).
set -euo pipefail

control() {
  case "$1" in
    ap1a) echo "${SIM_AP1A:-127.0.0.1:9201}" ;;
    ap1b) echo "${SIM_AP1B:-127.0.0.1:9202}" ;;
    ap2a) echo "${SIM_AP2A:-127.0.0.1:9203}" ;;
    ap2b) echo "${SIM_AP2B:-127.0.0.1:9204}" ;;
    *) echo "failover.sh: unknown member $1 (ap1a, ap1b, ap2a, ap2b)" >&2; exit 2 ;;
  esac
}

get_role() {
  local addr
  addr=$(control "$1") || exit $?
  curl -fsS --max-time 3 "http://$addr/sim/role" | tr -d '\r\n'
}

set_role() {
  local addr
  addr=$(control "$1") || exit $?
  curl -fsS --max-time 3 -d "$2" "http://$addr/sim/role" >/dev/null
  echo "$1 -> $2"
}

members_of() {
  case "$1" in
    ap1) echo "ap1a ap1b" ;;
    ap2) echo "ap2a ap2b" ;;
    *) echo "failover.sh: unknown mirror $1 (ap1, ap2)" >&2; exit 2 ;;
  esac
}

failover() {
  local mirror=$1 how=$2 primary="" backup=""
  for m in $(members_of "$mirror"); do
    case "$(get_role "$m")" in
      primary) primary=$m ;;
      *) backup=${backup:-$m} ;;
    esac
  done
  if [ -z "$primary" ]; then
    echo "failover.sh: $mirror has no primary now; try: failover.sh restore" >&2
    exit 1
  fi
  if [ -z "$backup" ]; then
    echo "failover.sh: $mirror has no other member to take over" >&2
    exit 1
  fi
  set_role "$primary" "$how"
  sleep "${FAILOVER_GAP:-1}"
  set_role "$backup" primary
}

case "${1:-}" in
  status)
    for m in ap1a ap1b ap2a ap2b; do
      printf '%s %s\n' "$m" "$(get_role "$m" 2>/dev/null || echo unreachable)"
    done
    ;;
  ap1 | ap2)
    how=${2:-switch}
    case "$how" in
      switch) failover "$1" backup ;;
      crash) failover "$1" down ;;
      hang) failover "$1" hang ;;
      *) echo "failover.sh: $how: use switch, crash or hang" >&2; exit 2 ;;
    esac
    ;;
  set)
    [ $# -eq 3 ] || { echo "usage: failover.sh set MEMBER primary|backup|down|hang" >&2; exit 2; }
    set_role "$2" "$3"
    ;;
  restore)
    for m in ap1a ap1b ap2a ap2b; do
      curl -fsS --max-time 3 -d normal "http://$(control "$m")/sim/status" >/dev/null
      echo "$m status page -> normal"
    done
    # Demote first, so no mirror ever has two primaries on the way back.
    set_role ap1b backup
    set_role ap2b backup
    set_role ap1a primary
    set_role ap2a primary
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
