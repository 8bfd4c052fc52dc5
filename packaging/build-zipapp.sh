#!/usr/bin/env bash
# Build telentir-box as one self-contained zipapp with shiv.
# Usage: packaging/build-zipapp.sh [OUTPUT]   (default: <repo>/dist/telentir-box.pyz;
# a relative OUTPUT is taken from the current directory, as any command would)
# $PYTHON picks the interpreter that runs shiv and pip (default: python3); the
# zipapp's compiled dependencies match that interpreter's version and platform.
# Needs only that Python (with its venv module) and pip's access to the package index:
# shiv is installed into a throwaway virtual environment, removed on exit.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
output="${1:-$repo_root/dist/telentir-box.pyz}"

# Resolve before the cd below, which would otherwise move a relative path.
case "$output" in
  /*) ;;
  *) output="$PWD/$output" ;;
esac
mkdir -p "$(dirname "$output")"

tools="$(mktemp -d "${TMPDIR:-/tmp}/telentir-box-build.XXXXXX")"
trap 'rm -rf "$tools"' EXIT
"$python" -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check 'shiv>=1.0.6'

cd "$repo_root"
"$tools/venv/bin/python" -m shiv \
  --console-script telentir-box \
  --output-file "$output" \
  --python '/usr/bin/env python3' \
  "$repo_root"

echo "built $output"
