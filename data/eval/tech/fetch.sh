#!/usr/bin/env bash
# Copy the tech evaluation corpus (parts/*.corpus) from Debian's packages into data/eval/tech/docs/, without
# installing them (data/eval/debian_files.sh).
#
# Each line of a parts/<source>.corpus file: `package path target-name` (a .gz path is gunzipped). A file whose
# first line is `# split-by: parts/<script>.py` holds one long document that the script splits into section
# files (python3 SCRIPT ORIGINAL DOCS_FOLDER, standard library only, deterministic).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/docs"
source "$here/../debian_files.sh"
mkdir -p "$out"
for corpus in "$here"/parts/*.corpus; do
  source_name="$(basename "$corpus" .corpus)"
  splitter="$(sed -n 's/^# split-by: //p' "$corpus" | head -n 1)"
  while read -r package path target; do
    if [ -n "$splitter" ]; then
      [ -e "$out/.$source_name.done" ] && continue
      fetch_file "$package" "$path" "$work/$target"
      python3 "$here/$splitter" "$work/$target" "$out" > /dev/null
      touch "$out/.$source_name.done"
    else
      [ -s "$out/$target" ] && continue
      fetch_file "$package" "$path" "$out/$target"
    fi
  done < <(grep -v '^#' "$corpus" | grep -v '^\s*$')
done
echo "Tech evaluation corpus: $(ls "$out" | wc -l) files in $out"
