#!/bin/sh
# Compose healthcheck of an IRIS mirror member (compose/stack.yml mounts cpf/ at /cpf).
# Healthy once IRIS runs and this instance holds a failover role: primary, or backup that
# has joined. So `depends_on: condition: service_healthy` starts a backup only after its
# primary really is primary, and the Web Gateways and mirrorlb only after every member
# joined. Stays healthy across failovers (primary and backup swap, both still healthy).
#
# `iris session` logs in with OS authentication, which InterSystems' container images
# allow for their own user (irisowner), the user healthchecks run as.
role=$(printf '%s\n' \
  'write "MLB-ROLE=",$select($SYSTEM.Mirror.IsPrimary():"primary",$SYSTEM.Mirror.IsBackup():"backup",1:"none"),!' \
  'halt' | iris session IRIS -U %SYS 2>/dev/null)
# Judged by the computed word only, not the exit status: a terminal that echoes its input
# must not count, and the session's exit status after `halt` says nothing about the role.
case "$role" in
  *MLB-ROLE=primary* | *MLB-ROLE=backup*) exit 0 ;;
  *) exit 1 ;;
esac
