#!/usr/bin/env bash
# Copy the tech evaluation corpus (parts/*.corpus) from Debian's packages into data/eval/tech/docs/.
#
# Each line of a parts/<source>.corpus file: `package path target-name` (a .gz path is gunzipped). A file whose
# first line is `# split-by: parts/<script>.py` holds one long document that the script splits into section
# files (python3 SCRIPT ORIGINAL DOCS_FOLDER, standard library only, deterministic). A file already on this
# machine is taken from there; otherwise the package is fetched with `apt-get download` and only the wanted
# file is unpacked from it with dpkg-deb: nothing is installed (as data/eval/pdf/fetch.sh does).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/docs"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

download() {  # download PACKAGE into $work/debs/, once
  local package="$1"
  mkdir -p "$work/debs"
  if compgen -G "$work/debs/${package}_*.deb" > /dev/null; then
    return 0
  fi
  if ! (cd "$work/debs" && apt-get -qq -o APT::Sandbox::User=root download "$package" 2> /dev/null); then
    apt-get update -qq
    (cd "$work/debs" && apt-get -qq -o APT::Sandbox::User=root download "$package")
  fi
}

fetch() {  # PACKAGE PATH DESTINATION
  local package="$1" path="$2" destination="$3" source="$2"
  if [ ! -f "$source" ]; then
    download "$package"
    deb="$(ls "$work/debs/${package}"_*.deb | head -n 1)"
    mkdir -p "$work/root"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/root" ".$path"
    source="$work/root$path"
  fi
  case "$path" in
    *.gz) gzip -dc "$source" > "$destination.part" ;;
    *) cp "$source" "$destination.part" ;;
  esac
  mv "$destination.part" "$destination"
}

for corpus in "$here"/parts/*.corpus; do
  source_name="$(basename "$corpus" .corpus)"
  splitter="$(sed -n 's/^# split-by: //p' "$corpus" | head -n 1)"
  while read -r package path target; do
    if [ -n "$splitter" ]; then
      [ -e "$out/.$source_name.done" ] && continue
      fetch "$package" "$path" "$work/$target"
      python3 "$here/$splitter" "$work/$target" "$out"
      touch "$out/.$source_name.done"
    else
      [ -s "$out/$target" ] && continue
      fetch "$package" "$path" "$out/$target"
    fi
  done < <(grep -v '^#' "$corpus" | grep -v '^\s*$')
done
echo "Tech evaluation corpus: $(ls "$out" | wc -l) files in $out"
