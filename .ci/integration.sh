#!/usr/bin/env bash
# Creates the two venvs the integration tests (tests/integration) run MONAI Label and MONAI Deploy in:
#   .ci/venv-label   MONAI Label 0.8.5: torch 2.14.1 + torchvision 0.29.1, pydicom<3, sam2 built without CUDA
#   .ci/venv-deploy  MONAI Deploy App SDK 4.0.0 (holoscan on CPU), torch 2.13.0, monai 1.6.x
# Both pin packages that clash with the core venv (torch, pydicom, protobuf), hence venvs of their own. Each gets this
# repository installed editable (the bundle's configs import r2mf_monai).
#
# Idempotent: a venv whose marker (.r2mf-complete) holds the current recipe is reused as it is (the editable install
# is refreshed, seconds); a missing, incomplete or outdated one is rebuilt from scratch.
# Usage: bash .ci/integration.sh [label|deploy ...]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
MARKER=.r2mf-complete
start=$(date +%s)

# The recipes; changing a line here rebuilds that venv on the next run.
LABEL_RECIPE='v1 torch==2.14.1 torchvision==0.29.1 | monailabel==0.8.5 pydicom<3 pynetdicom<3 dicomweb-client<0.60 | highdicom<0.23 | -e . --no-deps'
DEPLOY_RECIPE='v1 torch==2.13.0 | monai-deploy-app-sdk==4.0.0 | -e .'

# pip, quiet, without the "Location ... is ignored" lines that a machine's extra local indexes make it print
pipq() {
    local py=$1
    shift
    "$py" -m pip install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

editable_here() { # venv -> 0 when its r2mf_monai is this checkout's (an editable install of this folder)
    [[ "$("$1/bin/python" -c 'import os, r2mf_monai; print(os.path.dirname(os.path.dirname(r2mf_monai.__file__)))' \
        2>/dev/null)" == "$ROOT" ]]
}

complete() { # venv recipe -> 0 when the venv was finished with this recipe
    [[ -x "$1/bin/python" && -f "$1/$MARKER" ]] && [[ "$(cat "$1/$MARKER")" == "$2" ]]
}

fresh_venv() {
    rm -rf "$1"
    "$PYTHON" -m venv "$1"
    pipq "$1/bin/python" --upgrade pip
}

build_label() {
    local V=.ci/venv-label
    if complete "$V" "$LABEL_RECIPE"; then
        echo "[label] reusing $V"
        editable_here "$V" || pipq "$V/bin/python" -e . --no-deps
        return
    fi
    echo "[label] building $V (about 2-4 minutes, about 8 GB)"
    fresh_venv "$V"
    # torchvision's PyPI wheels are built against a CUDA torch: take the matching pair (both on local disk here)
    pipq "$V/bin/python" torch==2.14.1 torchvision==0.29.1
    # monailabel needs sam2, a source archive: build it without CUDA and against the venv's torch, or pip pulls a
    # second multi-GB torch into the isolated build environment
    local C
    C=$(mktemp)
    echo "torch==2.14.1" >"$C"
    SAM2_BUILD_CUDA=0 pipq "$V/bin/python" --build-constraint "$C" \
        monailabel==0.8.5 'pydicom<3' 'pynetdicom<3' 'dicomweb-client<0.60' 'highdicom<0.23'
    rm -f "$C"
    # r2mf_monai itself; its other dependencies come with monailabel's monai[all]-like set (checked below)
    pipq "$V/bin/python" -e . --no-deps
    "$V/bin/python" -c "import monailabel, monai, torch, torchvision, pydicom, highdicom, itk, skimage, r2mf_monai
print('[label] monailabel', monailabel.__version__, '| monai', monai.__version__, '| torch', torch.__version__,
      '| pydicom', pydicom.__version__, '| highdicom', highdicom.__version__)"
    echo "$LABEL_RECIPE" >"$V/$MARKER"
}

build_deploy() {
    local V=.ci/venv-deploy
    if complete "$V" "$DEPLOY_RECIPE"; then
        echo "[deploy] reusing $V"
        editable_here "$V" || pipq "$V/bin/python" -e . --no-deps
        return
    fi
    echo "[deploy] building $V (about 1 minute)"
    fresh_venv "$V"
    pipq "$V/bin/python" torch==2.13.0
    pipq "$V/bin/python" monai-deploy-app-sdk==4.0.0
    pipq "$V/bin/python" -e .
    "$V/bin/python" -c "import monai, torch, highdicom, r2mf_monai, monai.deploy.core
from importlib.metadata import version
assert monai.__version__.startswith('1.6'), f'monai {monai.__version__}: the bundle needs 1.6.x'
print('[deploy] monai-deploy-app-sdk', version('monai-deploy-app-sdk'),
      '| monai', monai.__version__, '| torch', torch.__version__, '| highdicom', highdicom.__version__)" 2>&1 |
        grep -v "stack size"
    echo "$DEPLOY_RECIPE" >"$V/$MARKER"
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(label deploy)
for t in "${targets[@]}"; do
    case "$t" in
    label) build_label ;;
    deploy) build_deploy ;;
    *)
        echo "unknown target '$t' (label, deploy)" >&2
        exit 2
        ;;
    esac
done
echo "integration venvs ready in $(($(date +%s) - start)) s ($ROOT/.ci)"
