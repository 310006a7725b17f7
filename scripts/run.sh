#!/usr/bin/env bash
# The README's main command: installs what is missing, builds prism, and
# serves MODEL_DIR (a hub-format SigLIP directory) over HTTP - or, when no
# directory is given, the bundled demo model models/demo, which is tiny and
# has random weights (its answers mean nothing; it shows that everything
# works). Further arguments go to `prism serve` (see `prism serve --help`).
#
#   scripts/run.sh                              # demo model on 127.0.0.1:8080
#   scripts/run.sh models/siglip-base-patch16-224 --port 9000
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
if [[ $# -eq 0 || $1 == --* ]]; then
  MODEL=models/demo
  echo "run: no model given: serving the bundled demo model (tiny, random weights: its answers mean nothing)"
else
  MODEL=$1
  shift
fi
PORT=${PRISM_PORT:-8080}
for ((i = 1; i <= $#; i++)); do
  [[ ${!i} == --port ]] && { j=$((i + 1)); PORT=${!j}; }
done
cat <<MSG
run: prism serve --model $MODEL $*
run: try, from another shell:
  curl -s localhost:$PORT/readyz
  curl -s localhost:$PORT/v1/embed -H 'Content-Type: application/json' -d '{"texts":["a photo of a cat"]}'
  curl -s localhost:$PORT/v1/classify -F image=@some.jpg -F labels=cat -F labels=dog
  (docs/api.md has every endpoint; Ctrl-C drains and stops the server)
MSG
# Idle OpenMP workers sleep instead of spinning, leaving the cores to the
# HTTP and preprocessing threads between batches (docs/BENCHMARKS.md,
# "Server under load"); an OMP_WAIT_POLICY already set is kept.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
exec ./build/prism serve --model "$MODEL" "$@"
