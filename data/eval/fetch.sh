#!/usr/bin/env bash
# Copy the evaluation corpus (data/eval/corpus.txt) from Debian's packages into data/eval/docs/,
# installing the packages first if needed (needs root, as on the project's machines and CI).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/docs"
mapfile -t entries < <(grep -v '^#' "$here/corpus.txt" | grep -v '^\s*$')
missing_packages=()
for entry in "${entries[@]}"; do
  read -r package path <<< "$entry"
  [ -f "$path" ] || missing_packages+=("$package")
done
if [ ${#missing_packages[@]} -gt 0 ]; then
  mapfile -t unique < <(printf '%s\n' "${missing_packages[@]}" | sort -u)
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${unique[@]}" > /dev/null
fi
mkdir -p "$out"
for entry in "${entries[@]}"; do
  read -r _ path <<< "$entry"
  cp -u "$path" "$out/"
done
echo "evaluation corpus: $(ls "$out" | wc -l) files in $out"
