#!/usr/bin/env bash
# The container HEALTHCHECK (installed in the images as /usr/local/bin/prism-healthcheck):
# GET /healthz on the local prism and exit 0 on HTTP 200, 1 otherwise. Plain
# bash (/dev/tcp), so the runtime images need no curl or wget. Checks
# liveness only: readiness (/readyz: model loaded, not draining) is for load
# balancers and Kubernetes' readiness probe. scripts/check-deploy.sh runs it
# against a live server in CI.
set -u
port=${PRISM_PORT:-8080}
{ exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || { echo "healthcheck: nothing listening on port $port"; exit 1; }
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t "${HEALTHCHECK_TIMEOUT:-4}" status <&3 || { echo "healthcheck: no answer from /healthz"; exit 1; }
[[ $status == "HTTP/1."[01]" 200"* ]] || { echo "healthcheck: /healthz answered: $status"; exit 1; }
