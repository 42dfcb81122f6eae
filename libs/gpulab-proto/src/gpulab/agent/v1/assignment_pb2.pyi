import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnforcementMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENFORCEMENT_MODE_UNSPECIFIED: _ClassVar[EnforcementMode]
    ENFORCEMENT_MODE_SOFT: _ClassVar[EnforcementMode]
    ENFORCEMENT_MODE_CGROUP: _ClassVar[EnforcementMode]
    ENFORCEMENT_MODE_MIG: _ClassVar[EnforcementMode]
    ENFORCEMENT_MODE_CONTAINER: _ClassVar[EnforcementMode]
    ENFORCEMENT_MODE_JUMP: _ClassVar[EnforcementMode]
ENFORCEMENT_MODE_UNSPECIFIED: EnforcementMode
ENFORCEMENT_MODE_SOFT: EnforcementMode
ENFORCEMENT_MODE_CGROUP: EnforcementMode
ENFORCEMENT_MODE_MIG: EnforcementMode
ENFORCEMENT_MODE_CONTAINER: EnforcementMode
ENFORCEMENT_MODE_JUMP: EnforcementMode

class Assignment(_message.Message):
    __slots__ = ("assignment_id", "linux_username", "ssh_public_keys", "enforcement_mode", "gpus", "cpus", "ram_mb", "expires_at", "mig_profile", "forward_targets")
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    LINUX_USERNAME_FIELD_NUMBER: _ClassVar[int]
    SSH_PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    ENFORCEMENT_MODE_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    RAM_MB_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MIG_PROFILE_FIELD_NUMBER: _ClassVar[int]
    FORWARD_TARGETS_FIELD_NUMBER: _ClassVar[int]
    assignment_id: str
    linux_username: str
    ssh_public_keys: _containers.RepeatedScalarFieldContainer[str]
    enforcement_mode: EnforcementMode
    gpus: _containers.RepeatedCompositeFieldContainer[AssignedGpu]
    cpus: int
    ram_mb: int
    expires_at: _timestamp_pb2.Timestamp
    mig_profile: str
    forward_targets: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, assignment_id: _Optional[str] = ..., linux_username: _Optional[str] = ..., ssh_public_keys: _Optional[_Iterable[str]] = ..., enforcement_mode: _Optional[_Union[EnforcementMode, str]] = ..., gpus: _Optional[_Iterable[_Union[AssignedGpu, _Mapping]]] = ..., cpus: _Optional[int] = ..., ram_mb: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mig_profile: _Optional[str] = ..., forward_targets: _Optional[_Iterable[str]] = ...) -> None: ...

class AssignedGpu(_message.Message):
    __slots__ = ("index", "uuid")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    index: int
    uuid: str
    def __init__(self, index: _Optional[int] = ..., uuid: _Optional[str] = ...) -> None: ...
