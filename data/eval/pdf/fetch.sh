#!/usr/bin/env bash
# Copy the PDF evaluation corpus (data/eval/pdf/corpus.txt) from Debian's packages into
# data/eval/pdf/docs/, gunzipping the .pdf.gz ones.
#
# A file already on this machine (its package installed) is taken from there. Otherwise the package is
# fetched with `apt-get download` and only the wanted file is unpacked from it with dpkg-deb: nothing is
# installed. (Installing would work too, but `userv` starts a daemon from its postinst and `groff` pulls
# in X libraries; none of that is needed to read a manual.) Needs apt's package lists: when a download
# fails, the lists are refreshed with `apt-get update` (root) and the download is tried again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/docs"
mapfile -t entries < <(grep -v '^#' "$here/corpus.txt" | grep -v '^\s*$')
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

for entry in "${entries[@]}"; do
  read -r package path <<< "$entry"
  name="$(basename "$path" .gz)"
  [ -s "$out/$name" ] && continue
  source="$path"
  if [ ! -f "$source" ]; then
    download "$package"
    deb="$(ls "$work/debs/${package}"_*.deb | head -n 1)"
    mkdir -p "$work/root"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/root" ".$path"
    source="$work/root$path"
  fi
  case "$path" in
    *.gz) gzip -dc "$source" > "$out/$name.part" ;;
    *) cp "$source" "$out/$name.part" ;;
  esac
  mv "$out/$name.part" "$out/$name"
done
echo "PDF evaluation corpus: $(ls "$out" | wc -l) files in $out"
