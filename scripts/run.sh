#!/usr/bin/env bash
# The README's main command: installs what is missing, builds prism, and
# serves MODEL_DIR (a hub-format SigLIP directory, or a pali3 one) over HTTP
# - or, when no directory is given, the two bundled demo models: models/demo
# (a SigLIP: embeddings, scores, labels) and models/demo-pali3 (a PaLI-3-style
# model beside it, --generative-model: captions, VQA, chat completions). Both
# are tiny and have random weights (their answers mean nothing; they show
# that everything works). Further arguments go to `prism serve` (see
# `prism serve --help`); a flag given there wins over the ones set here.
#
#   scripts/run.sh                              # both demo models on 127.0.0.1:8080
#   scripts/run.sh --port 9000                  # the same on another port
#   scripts/run.sh models/siglip-base-patch16-224 --port 9000
#
# PRISM_BIN=FILE serves with that prism binary and installs and builds
# nothing (tests/test_examples.py starts the server this way).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${PRISM_BIN:-} ]]; then
  scripts/install-deps.sh
  scripts/build.sh
  PRISM_BIN=./build/prism
fi
if [[ $# -eq 0 || $1 == --* ]]; then
  MODELS=(--model models/demo --generative-model models/demo-pali3)
  echo "run: no model given: serving the bundled demo models (tiny, random weights: their answers mean nothing)"
else
  MODELS=(--model "$1")
  shift
fi
PORT=${PRISM_PORT:-8080}
for ((i = 1; i <= $#; i++)); do
  [[ ${!i} == --port ]] && { j=$((i + 1)); PORT=${!j}; }
done
cat <<MSG
run: prism serve ${MODELS[*]} $*
run: try, from another shell in this directory:
  curl -s localhost:$PORT/readyz
  curl -s localhost:$PORT/v1/embed -H 'Content-Type: application/json' -d '{"texts":["a photo of a flower"]}'
  curl -s localhost:$PORT/v1/classify -F image=@examples/flower.jpg -F labels=flower -F labels=dog
MSG
if [[ ${#MODELS[@]} -gt 2 ]]; then
  cat <<MSG
  curl -s localhost:$PORT/v1/caption -F image=@examples/flower.jpg
  curl -s localhost:$PORT/v1/vqa -F image=@examples/flower.jpg -F question='what colour is the flower?'
MSG
fi
echo "  (docs/api.md has every endpoint; Ctrl-C drains and stops the server)"
# Idle OpenMP workers sleep instead of spinning, leaving the cores to the
# HTTP and preprocessing threads between batches (docs/BENCHMARKS.md,
# "Server under load"); an OMP_WAIT_POLICY already set is kept.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
exec "$PRISM_BIN" serve "${MODELS[@]}" "$@"
