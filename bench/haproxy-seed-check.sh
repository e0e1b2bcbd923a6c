#!/bin/bash
# The seed's external check (simplemirror haproxy-conf/check.sh): curl the member's mirror
# status page, up only on SUCCESS. The seed named the member by its container name
# (HAPROXY_SERVER_NAME); here each simulated member has its own address instead, with the
# status page on 52773 as on IRIS. -N avoids curl's "(23) Failed writing body".
status=$(curl -m 5 "http://${HAPROXY_SERVER_ADDR}:52773/csp/mirror_status.cxw" -sN)
if [[ $status = "SUCCESS" ]]; then
  exit 0
else
  exit 1
fi
