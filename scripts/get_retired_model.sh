#!/usr/bin/env bash
# Restore a retired bundled model (2.0.0 or 2.1.0 of voxmmsd-brats-default) from this repository's git
# history into a folder, check it, and import it into the user's model cache:
#
#   scripts/get_retired_model.sh 2.1.0 [DEST]     # then: voxmmsd segment ... --model voxmmsd-brats-default@2.1.0
#
# 3.0.0 replaced them as the default (docs/model-card.md); they are kept for comparison and for
# results made with them. Needs a git clone with history (not a source archive) and .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:?give the version: 2.0.0 or 2.1.0}
DEST=${2:-out/retired/voxmmsd-brats-default-$VERSION}
# the last commit that bundled them, and where
COMMIT=f511d9b
case "$VERSION" in
  2.1.0) SRC=Resources/models/voxmmsd-brats-default ;;
  2.0.0) SRC=Resources/models/voxmmsd-brats-default/2.0.0 ;;
  *) echo "error: $VERSION is not a retired version (2.0.0, 2.1.0); 1.0.0 and 3.0.0 are bundled" >&2; exit 2 ;;
esac
git cat-file -e "$COMMIT^{commit}" 2>/dev/null || {
  echo "error: commit $COMMIT is not in this clone (a shallow clone or a source archive?): run git fetch --unshallow" >&2; exit 2; }
if [ -e "$DEST" ]; then echo "error: $DEST exists; remove it or give another folder" >&2; exit 2; fi
mkdir -p "$(dirname "$DEST")"
tmp=$(mktemp -d "$(dirname "$DEST")/.retired.XXXXXX")  # same file system: the rename below is atomic
trap 'rm -rf "$tmp"' EXIT
for f in model.json model.onnx weights.safetensors; do
  git show "$COMMIT:$SRC/$f" > "$tmp/$f"
done
mv "$tmp" "$DEST"; trap - EXIT
PY=${PY:-.venv/bin/python}
"$PY" -m voxmmsd models verify "$DEST"
"$PY" -m voxmmsd models import "$DEST"
echo "voxmmsd-brats-default $VERSION restored to $DEST and imported (use --model voxmmsd-brats-default@$VERSION)"
