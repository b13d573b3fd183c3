#!/usr/bin/env bash
# Copy the PDF evaluation corpus (data/eval/pdf/corpus.txt) from Debian's packages into
# data/eval/pdf/docs/, gunzipping the .pdf.gz ones, without installing them (data/eval/debian_files.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/docs"
source "$here/../debian_files.sh"
mapfile -t entries < <(grep -v '^#' "$here/corpus.txt" | grep -v '^\s*$')
mkdir -p "$out"
for entry in "${entries[@]}"; do
  read -r package path <<< "$entry"
  name="$(basename "$path" .gz)"
  [ -s "$out/$name" ] && continue
  fetch_file "$package" "$path" "$out/$name"
done
echo "PDF evaluation corpus: $(ls "$out" | wc -l) files in $out"
