from gpulab.agent.v1 import assignment_pb2 as _assignment_pb2
from gpulab.agent.v1 import hardware_pb2 as _hardware_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApplyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPLY_STATE_UNSPECIFIED: _ClassVar[ApplyState]
    APPLY_STATE_APPLIED: _ClassVar[ApplyState]
    APPLY_STATE_REMOVED: _ClassVar[ApplyState]
    APPLY_STATE_FAILED: _ClassVar[ApplyState]
APPLY_STATE_UNSPECIFIED: ApplyState
APPLY_STATE_APPLIED: ApplyState
APPLY_STATE_REMOVED: ApplyState
APPLY_STATE_FAILED: ApplyState

class HeartbeatRequest(_message.Message):
    __slots__ = ("agent_version", "hardware", "applied_state")
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_STATE_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    hardware: _hardware_pb2.Hardware
    applied_state: AppliedState
    def __init__(self, agent_version: _Optional[str] = ..., hardware: _Optional[_Union[_hardware_pb2.Hardware, _Mapping]] = ..., applied_state: _Optional[_Union[AppliedState, _Mapping]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("assignments", "heartbeat_interval_s")
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[_assignment_pb2.Assignment]
    heartbeat_interval_s: int
    def __init__(self, assignments: _Optional[_Iterable[_Union[_assignment_pb2.Assignment, _Mapping]]] = ..., heartbeat_interval_s: _Optional[int] = ...) -> None: ...

class AppliedState(_message.Message):
    __slots__ = ("assignments", "errors")
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[AppliedAssignment]
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, assignments: _Optional[_Iterable[_Union[AppliedAssignment, _Mapping]]] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class AppliedAssignment(_message.Message):
    __slots__ = ("assignment_id", "state", "error", "access_port")
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ACCESS_PORT_FIELD_NUMBER: _ClassVar[int]
    assignment_id: str
    state: ApplyState
    error: str
    access_port: int
    def __init__(self, assignment_id: _Optional[str] = ..., state: _Optional[_Union[ApplyState, str]] = ..., error: _Optional[str] = ..., access_port: _Optional[int] = ...) -> None: ...
