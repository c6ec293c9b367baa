import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from hearby.common.v1 import auth_pb2 as _auth_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VersionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERSION_STATUS_UNSPECIFIED: _ClassVar[VersionStatus]
    VERSION_STATUS_PUBLISHED: _ClassVar[VersionStatus]
    VERSION_STATUS_BACKFILLING: _ClassVar[VersionStatus]
    VERSION_STATUS_READY: _ClassVar[VersionStatus]
    VERSION_STATUS_RETIRED: _ClassVar[VersionStatus]
    VERSION_STATUS_FAILED: _ClassVar[VersionStatus]
VERSION_STATUS_UNSPECIFIED: VersionStatus
VERSION_STATUS_PUBLISHED: VersionStatus
VERSION_STATUS_BACKFILLING: VersionStatus
VERSION_STATUS_READY: VersionStatus
VERSION_STATUS_RETIRED: VersionStatus
VERSION_STATUS_FAILED: VersionStatus

class LocalityScore(_message.Message):
    __slots__ = ("attribute", "k", "value", "chance")
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CHANCE_FIELD_NUMBER: _ClassVar[int]
    attribute: str
    k: int
    value: float
    chance: float
    def __init__(self, attribute: _Optional[str] = ..., k: _Optional[int] = ..., value: _Optional[float] = ..., chance: _Optional[float] = ...) -> None: ...

class Version(_message.Message):
    __slots__ = ("name", "status", "recipe", "dimension", "sample_rate", "window_seconds", "locality", "manifest_json", "created_at", "backfill_done", "backfill_total", "is_default", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOCALITY_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    BACKFILL_DONE_FIELD_NUMBER: _ClassVar[int]
    BACKFILL_TOTAL_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: VersionStatus
    recipe: str
    dimension: int
    sample_rate: int
    window_seconds: float
    locality: _containers.RepeatedCompositeFieldContainer[LocalityScore]
    manifest_json: str
    created_at: _timestamp_pb2.Timestamp
    backfill_done: int
    backfill_total: int
    is_default: bool
    error: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[VersionStatus, str]] = ..., recipe: _Optional[str] = ..., dimension: _Optional[int] = ..., sample_rate: _Optional[int] = ..., window_seconds: _Optional[float] = ..., locality: _Optional[_Iterable[_Union[LocalityScore, _Mapping]]] = ..., manifest_json: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., backfill_done: _Optional[int] = ..., backfill_total: _Optional[int] = ..., is_default: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class RegisterVersionRequest(_message.Message):
    __slots__ = ("name", "manifest_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    manifest_json: str
    def __init__(self, name: _Optional[str] = ..., manifest_json: _Optional[str] = ...) -> None: ...

class RegisterVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: Version
    def __init__(self, version: _Optional[_Union[Version, _Mapping]] = ...) -> None: ...

class GetVersionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: Version
    def __init__(self, version: _Optional[_Union[Version, _Mapping]] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[VersionStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[VersionStatus, str]]] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[Version]
    def __init__(self, versions: _Optional[_Iterable[_Union[Version, _Mapping]]] = ...) -> None: ...

class RetireVersionRequest(_message.Message):
    __slots__ = ("name", "drop_collection")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DROP_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    drop_collection: bool
    def __init__(self, name: _Optional[str] = ..., drop_collection: _Optional[bool] = ...) -> None: ...

class RetireVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: Version
    def __init__(self, version: _Optional[_Union[Version, _Mapping]] = ...) -> None: ...

class SetDefaultVersionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SetDefaultVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: Version
    def __init__(self, version: _Optional[_Union[Version, _Mapping]] = ...) -> None: ...

class GetDefaultVersionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetDefaultVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: Version
    def __init__(self, version: _Optional[_Union[Version, _Mapping]] = ...) -> None: ...
