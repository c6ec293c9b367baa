import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from hearby.common.v1 import auth_pb2 as _auth_pb2
from hearby.common.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUBMIT_STATUS_UNSPECIFIED: _ClassVar[SubmitStatus]
    SUBMIT_STATUS_ACCEPTED: _ClassVar[SubmitStatus]
    SUBMIT_STATUS_DUPLICATE: _ClassVar[SubmitStatus]
    SUBMIT_STATUS_REPLACED: _ClassVar[SubmitStatus]
SUBMIT_STATUS_UNSPECIFIED: SubmitStatus
SUBMIT_STATUS_ACCEPTED: SubmitStatus
SUBMIT_STATUS_DUPLICATE: SubmitStatus
SUBMIT_STATUS_REPLACED: SubmitStatus

class SubmitTrackRequest(_message.Message):
    __slots__ = ("track_id", "audio", "metadata")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    audio: _types_pb2.AudioInput
    metadata: _types_pb2.TrackMetadata
    def __init__(self, track_id: _Optional[str] = ..., audio: _Optional[_Union[_types_pb2.AudioInput, _Mapping]] = ..., metadata: _Optional[_Union[_types_pb2.TrackMetadata, _Mapping]] = ...) -> None: ...

class SubmitTrackResponse(_message.Message):
    __slots__ = ("track_id", "content_hash", "status", "stream_entry_id", "duration_seconds")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STREAM_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    content_hash: str
    status: SubmitStatus
    stream_entry_id: str
    duration_seconds: float
    def __init__(self, track_id: _Optional[str] = ..., content_hash: _Optional[str] = ..., status: _Optional[_Union[SubmitStatus, str]] = ..., stream_entry_id: _Optional[str] = ..., duration_seconds: _Optional[float] = ...) -> None: ...

class GetTrackRequest(_message.Message):
    __slots__ = ("track_id",)
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    def __init__(self, track_id: _Optional[str] = ...) -> None: ...

class VersionIngestState(_message.Message):
    __slots__ = ("version", "embedded")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    version: str
    embedded: bool
    def __init__(self, version: _Optional[str] = ..., embedded: _Optional[bool] = ...) -> None: ...

class Track(_message.Message):
    __slots__ = ("track_id", "metadata", "content_hash", "audio_uri", "submitted_at")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    AUDIO_URI_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    metadata: _types_pb2.TrackMetadata
    content_hash: str
    audio_uri: str
    submitted_at: _timestamp_pb2.Timestamp
    def __init__(self, track_id: _Optional[str] = ..., metadata: _Optional[_Union[_types_pb2.TrackMetadata, _Mapping]] = ..., content_hash: _Optional[str] = ..., audio_uri: _Optional[str] = ..., submitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetTrackResponse(_message.Message):
    __slots__ = ("track", "versions")
    TRACK_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    track: Track
    versions: _containers.RepeatedCompositeFieldContainer[VersionIngestState]
    def __init__(self, track: _Optional[_Union[Track, _Mapping]] = ..., versions: _Optional[_Iterable[_Union[VersionIngestState, _Mapping]]] = ...) -> None: ...

class ListTracksRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTracksResponse(_message.Message):
    __slots__ = ("tracks", "next_page_token", "total")
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    tracks: _containers.RepeatedCompositeFieldContainer[Track]
    next_page_token: str
    total: int
    def __init__(self, tracks: _Optional[_Iterable[_Union[Track, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class GetTrackAudioRequest(_message.Message):
    __slots__ = ("track_id",)
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    def __init__(self, track_id: _Optional[str] = ...) -> None: ...

class GetTrackAudioResponse(_message.Message):
    __slots__ = ("mime_type", "chunk")
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    mime_type: str
    chunk: bytes
    def __init__(self, mime_type: _Optional[str] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class GetIngestStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetIngestStatusResponse(_message.Message):
    __slots__ = ("stream_length", "pending", "lag", "dead_letters", "consumers")
    class Consumer(_message.Message):
        __slots__ = ("name", "pending", "idle_ms")
        NAME_FIELD_NUMBER: _ClassVar[int]
        PENDING_FIELD_NUMBER: _ClassVar[int]
        IDLE_MS_FIELD_NUMBER: _ClassVar[int]
        name: str
        pending: int
        idle_ms: int
        def __init__(self, name: _Optional[str] = ..., pending: _Optional[int] = ..., idle_ms: _Optional[int] = ...) -> None: ...
    STREAM_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    CONSUMERS_FIELD_NUMBER: _ClassVar[int]
    stream_length: int
    pending: int
    lag: int
    dead_letters: int
    consumers: _containers.RepeatedCompositeFieldContainer[GetIngestStatusResponse.Consumer]
    def __init__(self, stream_length: _Optional[int] = ..., pending: _Optional[int] = ..., lag: _Optional[int] = ..., dead_letters: _Optional[int] = ..., consumers: _Optional[_Iterable[_Union[GetIngestStatusResponse.Consumer, _Mapping]]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("entry_id", "track_id", "reason", "attempts", "failed_at")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    track_id: str
    reason: str
    attempts: int
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, entry_id: _Optional[str] = ..., track_id: _Optional[str] = ..., reason: _Optional[str] = ..., attempts: _Optional[int] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters",)
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ...) -> None: ...

class RetryDeadLetterRequest(_message.Message):
    __slots__ = ("entry_id",)
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    def __init__(self, entry_id: _Optional[str] = ...) -> None: ...

class RetryDeadLetterResponse(_message.Message):
    __slots__ = ("stream_entry_id",)
    STREAM_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    stream_entry_id: str
    def __init__(self, stream_entry_id: _Optional[str] = ...) -> None: ...
