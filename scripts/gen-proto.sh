#!/usr/bin/env bash
# Generate the Python and Go code for the agent's gRPC contract (proto/).
#
#   scripts/gen-proto.sh [OUT_ROOT]
#
# Writes OUT_ROOT/libs/gpulab-proto/src/gpulab/... (Python: messages, .pyi
# stubs, gRPC stubs) and OUT_ROOT/agent/gen/gpulab/... (Go). OUT_ROOT defaults
# to the repository root; the tests pass a temporary directory and compare.
#
# Every tool is pinned, so the output is byte-for-byte reproducible:
#   protoc                          grpcio-tools, from ${PYTHON:-.venv/bin/python}
#   protoc-gen-go, protoc-gen-go-grpc   `tool` directives in agent/go.mod
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_root="${1:-$repo_root}"
mkdir -p "$out_root"
out_root="$(cd "$out_root" && pwd)"
python="${PYTHON:-$repo_root/.venv/bin/python}"
# The script changes directory below: a relative interpreter path must be made absolute first.
case "$python" in
  */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;;
esac
if ! "$python" -c 'import grpc_tools.protoc' 2>/dev/null; then
  echo "gen-proto: $python cannot import grpc_tools (grpcio-tools); create the workspace venv or set PYTHON" >&2
  exit 1
fi

# Generated into a scratch folder first and moved into place only when every step succeeded, so a
# failure leaves the committed code as it was.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
py_out="$scratch/py"
go_out="$scratch/go"

cd "$repo_root/proto"

# Sorted in the C locale so that the order of files handed to protoc, and with
# it the output, does not depend on the filesystem or the user's locale.
mapfile -t protos < <(find gpulab -name '*.proto' | LC_ALL=C sort)
if [ "${#protos[@]}" -eq 0 ]; then
  echo "gen-proto: no .proto files under proto/gpulab" >&2
  exit 1
fi

# `go tool -n` builds the pinned plugin (once; it is cached) and prints the
# path of the binary, which is what protoc's --plugin needs.
protoc_gen_go="$(cd "$repo_root/agent" && go tool -n protoc-gen-go)"
protoc_gen_go_grpc="$(cd "$repo_root/agent" && go tool -n protoc-gen-go-grpc)"

mkdir -p "$py_out" "$go_out"

# grpc_tools.protoc adds its bundled well-known types (google/protobuf/*.proto)
# to the include path itself.
"$python" -m grpc_tools.protoc \
  --proto_path=. \
  --python_out="$py_out" \
  --pyi_out="$py_out" \
  --grpc_python_out="$py_out" \
  "${protos[@]}"

"$python" -m grpc_tools.protoc \
  --proto_path=. \
  --plugin=protoc-gen-go="$protoc_gen_go" \
  --plugin=protoc-gen-go-grpc="$protoc_gen_go_grpc" \
  --go_out="$go_out" \
  --go_opt=module=github.com/gpulab/gpulab/agent \
  --go-grpc_out="$go_out" \
  --go-grpc_opt=module=github.com/gpulab/gpulab/agent \
  "${protos[@]}"

# Replace whole folders, so that code for a deleted .proto file does not linger. Both hold
# generated code only.
mkdir -p "$out_root/libs/gpulab-proto/src" "$out_root/agent"
rm -rf "$out_root/libs/gpulab-proto/src/gpulab" "$out_root/agent/gen"
mv "$py_out/gpulab" "$out_root/libs/gpulab-proto/src/gpulab"
mv "$go_out/gen" "$out_root/agent/gen"
