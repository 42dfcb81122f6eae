"""The agent's gRPC contract: generated code is current, importable, and the protos follow buf's STANDARD rules.

`make gen` must leave `git diff` empty: these tests regenerate everything into a temporary directory with the
pinned tools and compare byte for byte with what is committed. They also check the buf STANDARD lint rules that
protolint (the linter `make -C agent proto-lint` runs) does not have, on the compiled descriptors.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import timestamp_pb2

REPO_ROOT = Path(__file__).resolve().parent.parent
GEN_SCRIPT = REPO_ROOT / "scripts" / "gen-proto.sh"
PROTO_ROOT = REPO_ROOT / "proto"
# Directories that hold generated code only, relative to the repository root (or to gen-proto.sh's OUT_ROOT).
GENERATED_DIRS = ("libs/gpulab-proto/src/gpulab", "agent/gen")
GO_MODULE = "github.com/gpulab/gpulab/agent"
# gen-proto.sh builds protoc-gen-go and protoc-gen-go-grpc on first use; from a cold Go cache that takes about a minute.
GEN_TIMEOUT_S = 240


def _proto_files() -> list[str]:
    """Every .proto file, as protoc names it (relative to proto/)."""
    return sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto"))


def _module_name(proto_file: str) -> str:
    return proto_file.removesuffix(".proto").replace("/", ".") + "_pb2"


def _files_under(root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for rel in GENERATED_DIRS:
        base = root / rel
        for path in sorted(base.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output of scripts/gen-proto.sh run into a fresh directory, with this interpreter's grpcio-tools."""
    if shutil.which("go") is None:
        pytest.fail("`go` is not on PATH: gen-proto.sh needs it for protoc-gen-go and protoc-gen-go-grpc")
    out_root = tmp_path_factory.mktemp("gen")
    result = subprocess.run(
        [str(GEN_SCRIPT), str(out_root)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=GEN_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"gen-proto.sh failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return out_root


def test_generated_code_matches_what_is_committed(regenerated: Path) -> None:
    committed = _files_under(REPO_ROOT)
    fresh = _files_under(regenerated)

    assert sorted(fresh.keys() - committed.keys()) == [], "generated but not committed: run `make gen`"
    assert sorted(committed.keys() - fresh.keys()) == [], "committed but no longer generated: run `make gen`"
    stale = sorted(name for name in fresh if fresh[name] != committed[name])
    assert stale == [], "committed code differs from the generator's output: run `make gen`"


def test_generation_is_deterministic(regenerated: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(GEN_SCRIPT), str(tmp_path)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=GEN_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert _files_under(tmp_path) == _files_under(regenerated)


def test_every_proto_has_python_and_go_code(regenerated: Path) -> None:
    names = set(_files_under(regenerated))
    for proto in _proto_files():
        stem = proto.removesuffix(".proto")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert f"libs/gpulab-proto/src/{stem}{suffix}" in names
        assert f"agent/gen/{stem}.pb.go" in names


def test_heartbeat_request_round_trips_through_the_wire_format() -> None:
    from gpulab.agent.v1 import assignment_pb2, hardware_pb2, heartbeat_pb2

    request = heartbeat_pb2.HeartbeatRequest(
        agent_version="1.2.0",
        hardware=hardware_pb2.Hardware(
            cpu_model="AMD EPYC 7763 64-Core Processor",
            cpu_cores=128,
            ram_mb=1_031_891,
            gpus=[
                hardware_pb2.Gpu(
                    index=0,
                    uuid="GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02",
                    name="NVIDIA A100-SXM4-40GB",
                    memory_mb=40960,
                    mig_capable=True,
                    mig_enabled=True,
                ),
            ],
        ),
        applied_state=heartbeat_pb2.AppliedState(
            assignments=[
                heartbeat_pb2.AppliedAssignment(assignment_id="a1", state=heartbeat_pb2.APPLY_STATE_APPLIED),
                heartbeat_pb2.AppliedAssignment(
                    assignment_id="a2", state=heartbeat_pb2.APPLY_STATE_FAILED, error="useradd: exit status 9"
                ),
            ],
            errors=["nvidia-smi: exit status 9"],
        ),
    )

    decoded = heartbeat_pb2.HeartbeatRequest.FromString(request.SerializeToString())

    assert decoded == request
    assert decoded.hardware.gpus[0].mig_enabled is True
    assert decoded.applied_state.assignments[1].error == "useradd: exit status 9"

    response = heartbeat_pb2.HeartbeatResponse(
        assignments=[
            assignment_pb2.Assignment(
                assignment_id="a1",
                linux_username="gpulab-alice",
                ssh_public_keys=["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH alice@laptop"],
                enforcement_mode=assignment_pb2.ENFORCEMENT_MODE_CGROUP,
                gpus=[assignment_pb2.AssignedGpu(index=0, uuid="GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02")],
                cpus=8,
                ram_mb=65536,
                expires_at=timestamp_pb2.Timestamp(seconds=1_893_456_000),
            ),
        ],
        heartbeat_interval_s=30,
    )
    assert heartbeat_pb2.HeartbeatResponse.FromString(response.SerializeToString()) == response


def test_hardware_fields_mirror_rest_node_hardware() -> None:
    from gpulab.agent.v1 import hardware_pb2

    assert list(hardware_pb2.Hardware.DESCRIPTOR.fields_by_name) == ["cpu_model", "cpu_cores", "ram_mb", "gpus"]
    assert list(hardware_pb2.Gpu.DESCRIPTOR.fields_by_name) == [
        "index",
        "uuid",
        "name",
        "memory_mb",
        "mig_capable",
        "mig_enabled",
    ]


def test_grpc_stubs_name_the_published_services() -> None:
    from gpulab.agent.v1 import enrollment_pb2_grpc, heartbeat_pb2_grpc

    assert hasattr(enrollment_pb2_grpc, "EnrollmentStub")
    assert hasattr(enrollment_pb2_grpc, "add_EnrollmentServicer_to_server")
    assert hasattr(heartbeat_pb2_grpc, "HeartbeatStub")
    assert hasattr(heartbeat_pb2_grpc, "add_HeartbeatServicer_to_server")


def _compiled(proto_file: str) -> ModuleType:
    return importlib.import_module(_module_name(proto_file))


@pytest.mark.parametrize("proto_file", _proto_files())
def test_package_is_versioned_and_matches_its_directory(proto_file: str) -> None:
    """buf's PACKAGE_VERSION_SUFFIX, PACKAGE_DIRECTORY_MATCH and PACKAGE_SAME_GO_PACKAGE."""
    descriptor = _compiled(proto_file).DESCRIPTOR

    assert re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)*\.v\d+", descriptor.package)
    assert descriptor.package.replace(".", "/") == str(Path(proto_file).parent)
    go_package = f"{GO_MODULE}/gen/{descriptor.package.replace('.', '/')};agentv1"
    assert descriptor.GetOptions().go_package == go_package


@pytest.mark.parametrize("proto_file", _proto_files())
def test_rpcs_use_their_own_request_and_response_messages(proto_file: str) -> None:
    """buf's RPC_REQUEST_STANDARD_NAME, RPC_RESPONSE_STANDARD_NAME and RPC_REQUEST_RESPONSE_UNIQUE."""
    descriptor = _compiled(proto_file).DESCRIPTOR
    used: list[str] = []
    for service in descriptor.services_by_name.values():
        for method in service.methods:
            assert method.input_type.name in (f"{method.name}Request", f"{service.name}{method.name}Request")
            assert method.output_type.name in (f"{method.name}Response", f"{service.name}{method.name}Response")
            used += [method.input_type.full_name, method.output_type.full_name]
    assert len(used) == len(set(used)), f"a message is the request or response of more than one RPC: {used}"
