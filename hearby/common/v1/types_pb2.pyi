from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VersionChoice(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERSION_CHOICE_UNSPECIFIED: _ClassVar[VersionChoice]
    VERSION_CHOICE_EXPLICIT: _ClassVar[VersionChoice]
    VERSION_CHOICE_EXPERIMENT: _ClassVar[VersionChoice]
    VERSION_CHOICE_DEFAULT: _ClassVar[VersionChoice]
    VERSION_CHOICE_BY_ATTRIBUTE: _ClassVar[VersionChoice]
VERSION_CHOICE_UNSPECIFIED: VersionChoice
VERSION_CHOICE_EXPLICIT: VersionChoice
VERSION_CHOICE_EXPERIMENT: VersionChoice
VERSION_CHOICE_DEFAULT: VersionChoice
VERSION_CHOICE_BY_ATTRIBUTE: VersionChoice

class TrackMetadata(_message.Message):
    __slots__ = ("title", "artist", "genre", "key", "mode", "tempo_bpm", "mood", "instrument", "duration_seconds", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ARTIST_FIELD_NUMBER: _ClassVar[int]
    GENRE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TEMPO_BPM_FIELD_NUMBER: _ClassVar[int]
    MOOD_FIELD_NUMBER: _ClassVar[int]
    INSTRUMENT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    title: str
    artist: str
    genre: str
    key: str
    mode: str
    tempo_bpm: float
    mood: str
    instrument: str
    duration_seconds: float
    extra: _containers.ScalarMap[str, str]
    def __init__(self, title: _Optional[str] = ..., artist: _Optional[str] = ..., genre: _Optional[str] = ..., key: _Optional[str] = ..., mode: _Optional[str] = ..., tempo_bpm: _Optional[float] = ..., mood: _Optional[str] = ..., instrument: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., extra: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ScoredTrack(_message.Message):
    __slots__ = ("track_id", "score", "metadata")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    score: float
    metadata: TrackMetadata
    def __init__(self, track_id: _Optional[str] = ..., score: _Optional[float] = ..., metadata: _Optional[_Union[TrackMetadata, _Mapping]] = ...) -> None: ...

class AudioInput(_message.Message):
    __slots__ = ("data", "uri")
    DATA_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    uri: str
    def __init__(self, data: _Optional[bytes] = ..., uri: _Optional[str] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("expression",)
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    expression: str
    def __init__(self, expression: _Optional[str] = ...) -> None: ...

class Attribution(_message.Message):
    __slots__ = ("request_id", "version", "choice", "experiment", "arm")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    version: str
    choice: VersionChoice
    experiment: str
    arm: str
    def __init__(self, request_id: _Optional[str] = ..., version: _Optional[str] = ..., choice: _Optional[_Union[VersionChoice, str]] = ..., experiment: _Optional[str] = ..., arm: _Optional[str] = ...) -> None: ...
