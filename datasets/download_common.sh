# Shared by download_cyclegan_dataset.sh and download_pix2pix_dataset.sh (sourced, not run).
# fetch_dataset SCRIPT NAMES URL_BASE EXT [ARGS...]: check that ARGS is one known NAME, download
# URL_BASE/NAME.EXT (zip or tar.gz) next to this file, unpack it there and remove the archive.
fetch_dataset() {
  local script=$1 names=$2 base=$3 ext=$4
  shift 4
  local usage="usage: $script NAME   (NAME one of: $names)"
  [[ $# -eq 1 ]] || { echo "$usage" >&2; exit 2; }
  local name=$1 known=0 n
  for n in $names; do [[ $n == "$name" ]] && known=1; done
  [[ $known == 1 ]] || { echo "$usage" >&2; exit 2; }

  local here url archive
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  url="$base/$name.$ext"
  archive="$here/$name.$ext"
  echo "downloading $url"
  if command -v wget >/dev/null 2>&1; then
    wget -q --show-progress -O "$archive" "$url" || { rm -f "$archive"; _fetch_failed "$url" "$name"; }
  else
    curl -fL --progress-bar -o "$archive" "$url" || { rm -f "$archive"; _fetch_failed "$url" "$name"; }
  fi
  if [[ $ext == zip ]]; then unzip -q -o "$archive" -d "$here"; else tar -xzf "$archive" -C "$here"; fi
  rm -f "$archive"
  echo "dataset in $here/$name"
}

_fetch_failed() {
  echo "error: could not download $1" >&2
  if [[ $2 == cityscapes ]]; then
    echo "Cityscapes is licensed: get gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip from" \
         "https://www.cityscapes-dataset.com and pair them with datasets/prepare_cityscapes_dataset.py" >&2
  fi
  exit 1
}
