# Sourced by the evaluation sets' fetch scripts: copy single files out of Debian packages.
#
# A file already on this machine (its package installed) is taken from there. Otherwise the package is
# fetched with `apt-get download` and only the wanted file is unpacked from it with dpkg-deb: nothing is
# installed. (Installing would work too, but `userv` starts a daemon from its postinst and `groff` pulls
# in X libraries; none of that is needed to read a manual.) Needs apt's package lists: when a download
# fails, the lists are refreshed with `apt-get update` (root) and the download is tried again.
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

fetch_file() {  # PACKAGE PATH DESTINATION: the file, gunzipped when PATH ends in .gz, written whole or not at all
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
