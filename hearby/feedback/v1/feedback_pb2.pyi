import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from hearby.common.v1 import auth_pb2 as _auth_pb2
from hearby.ranker.v1 import ranker_pb2 as _ranker_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Preference(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREFERENCE_UNSPECIFIED: _ClassVar[Preference]
    PREFERENCE_LEFT: _ClassVar[Preference]
    PREFERENCE_RIGHT: _ClassVar[Preference]
    PREFERENCE_TIE: _ClassVar[Preference]
PREFERENCE_UNSPECIFIED: Preference
PREFERENCE_LEFT: Preference
PREFERENCE_RIGHT: Preference
PREFERENCE_TIE: Preference

class UserEvent(_message.Message):
    __slots__ = ("user_id", "track_id", "type", "position_seconds", "request_id", "time", "event_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    POSITION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    track_id: str
    type: _ranker_pb2.EventType
    position_seconds: float
    request_id: str
    time: _timestamp_pb2.Timestamp
    event_id: str
    def __init__(self, user_id: _Optional[str] = ..., track_id: _Optional[str] = ..., type: _Optional[_Union[_ranker_pb2.EventType, str]] = ..., position_seconds: _Optional[float] = ..., request_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event_id: _Optional[str] = ...) -> None: ...

class RecordEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[UserEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[UserEvent, _Mapping]]] = ...) -> None: ...

class RecordEventsResponse(_message.Message):
    __slots__ = ("recorded",)
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    def __init__(self, recorded: _Optional[int] = ...) -> None: ...

class ShownList(_message.Message):
    __slots__ = ("version", "track_ids")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    version: str
    track_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., track_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class NeighbourScore(_message.Message):
    __slots__ = ("track_id", "side", "score")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    side: str
    score: int
    def __init__(self, track_id: _Optional[str] = ..., side: _Optional[str] = ..., score: _Optional[int] = ...) -> None: ...

class SimilarityRating(_message.Message):
    __slots__ = ("rating_id", "rater_id", "trial_id", "seed_track_id", "left", "right", "preference", "neighbour_scores", "time")
    RATING_ID_FIELD_NUMBER: _ClassVar[int]
    RATER_ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    RIGHT_FIELD_NUMBER: _ClassVar[int]
    PREFERENCE_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOUR_SCORES_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    rating_id: str
    rater_id: str
    trial_id: str
    seed_track_id: str
    left: ShownList
    right: ShownList
    preference: Preference
    neighbour_scores: _containers.RepeatedCompositeFieldContainer[NeighbourScore]
    time: _timestamp_pb2.Timestamp
    def __init__(self, rating_id: _Optional[str] = ..., rater_id: _Optional[str] = ..., trial_id: _Optional[str] = ..., seed_track_id: _Optional[str] = ..., left: _Optional[_Union[ShownList, _Mapping]] = ..., right: _Optional[_Union[ShownList, _Mapping]] = ..., preference: _Optional[_Union[Preference, str]] = ..., neighbour_scores: _Optional[_Iterable[_Union[NeighbourScore, _Mapping]]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubmitRatingRequest(_message.Message):
    __slots__ = ("rating",)
    RATING_FIELD_NUMBER: _ClassVar[int]
    rating: SimilarityRating
    def __init__(self, rating: _Optional[_Union[SimilarityRating, _Mapping]] = ...) -> None: ...

class SubmitRatingResponse(_message.Message):
    __slots__ = ("rating_id", "created")
    RATING_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    rating_id: str
    created: bool
    def __init__(self, rating_id: _Optional[str] = ..., created: _Optional[bool] = ...) -> None: ...

class ListRatingsRequest(_message.Message):
    __slots__ = ("version_a", "version_b")
    VERSION_A_FIELD_NUMBER: _ClassVar[int]
    VERSION_B_FIELD_NUMBER: _ClassVar[int]
    version_a: str
    version_b: str
    def __init__(self, version_a: _Optional[str] = ..., version_b: _Optional[str] = ...) -> None: ...

class ListRatingsResponse(_message.Message):
    __slots__ = ("ratings",)
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    ratings: _containers.RepeatedCompositeFieldContainer[SimilarityRating]
    def __init__(self, ratings: _Optional[_Iterable[_Union[SimilarityRating, _Mapping]]] = ...) -> None: ...
