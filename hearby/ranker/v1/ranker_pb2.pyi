from hearby.common.v1 import auth_pb2 as _auth_pb2
from hearby.common.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Attribute(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTRIBUTE_UNSPECIFIED: _ClassVar[Attribute]
    ATTRIBUTE_GENRE: _ClassVar[Attribute]
    ATTRIBUTE_MOOD: _ClassVar[Attribute]
    ATTRIBUTE_INSTRUMENT: _ClassVar[Attribute]
    ATTRIBUTE_TEMPO: _ClassVar[Attribute]
    ATTRIBUTE_KEY: _ClassVar[Attribute]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_PLAY: _ClassVar[EventType]
    EVENT_TYPE_SKIP: _ClassVar[EventType]
    EVENT_TYPE_LIKE: _ClassVar[EventType]
    EVENT_TYPE_DISLIKE: _ClassVar[EventType]
    EVENT_TYPE_COMPLETE: _ClassVar[EventType]
ATTRIBUTE_UNSPECIFIED: Attribute
ATTRIBUTE_GENRE: Attribute
ATTRIBUTE_MOOD: Attribute
ATTRIBUTE_INSTRUMENT: Attribute
ATTRIBUTE_TEMPO: Attribute
ATTRIBUTE_KEY: Attribute
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_PLAY: EventType
EVENT_TYPE_SKIP: EventType
EVENT_TYPE_LIKE: EventType
EVENT_TYPE_DISLIKE: EventType
EVENT_TYPE_COMPLETE: EventType

class SimilarRequest(_message.Message):
    __slots__ = ("track_id", "audio", "k", "filter", "version", "by", "exclude_same_artist", "user_id")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SAME_ARTIST_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    audio: _types_pb2.AudioInput
    k: int
    filter: _types_pb2.Filter
    version: str
    by: Attribute
    exclude_same_artist: bool
    user_id: str
    def __init__(self, track_id: _Optional[str] = ..., audio: _Optional[_Union[_types_pb2.AudioInput, _Mapping]] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., version: _Optional[str] = ..., by: _Optional[_Union[Attribute, str]] = ..., exclude_same_artist: _Optional[bool] = ..., user_id: _Optional[str] = ...) -> None: ...

class SimilarResponse(_message.Message):
    __slots__ = ("attribution", "tracks")
    ATTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    attribution: _types_pb2.Attribution
    tracks: _containers.RepeatedCompositeFieldContainer[_types_pb2.ScoredTrack]
    def __init__(self, attribution: _Optional[_Union[_types_pb2.Attribution, _Mapping]] = ..., tracks: _Optional[_Iterable[_Union[_types_pb2.ScoredTrack, _Mapping]]] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "k", "seed_track_ids", "filter", "version", "diversity_lambda", "max_per_artist")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    SEED_TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_LAMBDA_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_ARTIST_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    k: int
    seed_track_ids: _containers.RepeatedScalarFieldContainer[str]
    filter: _types_pb2.Filter
    version: str
    diversity_lambda: float
    max_per_artist: int
    def __init__(self, user_id: _Optional[str] = ..., k: _Optional[int] = ..., seed_track_ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., version: _Optional[str] = ..., diversity_lambda: _Optional[float] = ..., max_per_artist: _Optional[int] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("attribution", "tracks", "cold_start", "explanation")
    ATTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    COLD_START_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    attribution: _types_pb2.Attribution
    tracks: _containers.RepeatedCompositeFieldContainer[_types_pb2.ScoredTrack]
    cold_start: bool
    explanation: str
    def __init__(self, attribution: _Optional[_Union[_types_pb2.Attribution, _Mapping]] = ..., tracks: _Optional[_Iterable[_Union[_types_pb2.ScoredTrack, _Mapping]]] = ..., cold_start: _Optional[bool] = ..., explanation: _Optional[str] = ...) -> None: ...

class SessionStart(_message.Message):
    __slots__ = ("user_id", "k", "filter", "version")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    k: int
    filter: _types_pb2.Filter
    version: str
    def __init__(self, user_id: _Optional[str] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., version: _Optional[str] = ...) -> None: ...

class ListeningEvent(_message.Message):
    __slots__ = ("track_id", "type", "position_seconds", "request_id")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    POSITION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    type: EventType
    position_seconds: float
    request_id: str
    def __init__(self, track_id: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., position_seconds: _Optional[float] = ..., request_id: _Optional[str] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("start", "event")
    START_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    start: SessionStart
    event: ListeningEvent
    def __init__(self, start: _Optional[_Union[SessionStart, _Mapping]] = ..., event: _Optional[_Union[ListeningEvent, _Mapping]] = ...) -> None: ...

class SessionResponse(_message.Message):
    __slots__ = ("attribution", "tracks", "events_seen")
    ATTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_SEEN_FIELD_NUMBER: _ClassVar[int]
    attribution: _types_pb2.Attribution
    tracks: _containers.RepeatedCompositeFieldContainer[_types_pb2.ScoredTrack]
    events_seen: int
    def __init__(self, attribution: _Optional[_Union[_types_pb2.Attribution, _Mapping]] = ..., tracks: _Optional[_Iterable[_Union[_types_pb2.ScoredTrack, _Mapping]]] = ..., events_seen: _Optional[int] = ...) -> None: ...
