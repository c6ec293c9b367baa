from hearby.common.v1 import auth_pb2 as _auth_pb2
from hearby.common.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VectorRecord(_message.Message):
    __slots__ = ("track_id", "embedding", "metadata")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    embedding: _containers.RepeatedScalarFieldContainer[float]
    metadata: _types_pb2.TrackMetadata
    def __init__(self, track_id: _Optional[str] = ..., embedding: _Optional[_Iterable[float]] = ..., metadata: _Optional[_Union[_types_pb2.TrackMetadata, _Mapping]] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("version", "dimension")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    dimension: int
    def __init__(self, version: _Optional[str] = ..., dimension: _Optional[int] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ("version", "created")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    version: str
    created: bool
    def __init__(self, version: _Optional[str] = ..., created: _Optional[bool] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    class Collection(_message.Message):
        __slots__ = ("version", "dimension", "rows")
        VERSION_FIELD_NUMBER: _ClassVar[int]
        DIMENSION_FIELD_NUMBER: _ClassVar[int]
        ROWS_FIELD_NUMBER: _ClassVar[int]
        version: str
        dimension: int
        rows: int
        def __init__(self, version: _Optional[str] = ..., dimension: _Optional[int] = ..., rows: _Optional[int] = ...) -> None: ...
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[ListCollectionsResponse.Collection]
    def __init__(self, collections: _Optional[_Iterable[_Union[ListCollectionsResponse.Collection, _Mapping]]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("version", "records")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    version: str
    records: _containers.RepeatedCompositeFieldContainer[VectorRecord]
    def __init__(self, version: _Optional[str] = ..., records: _Optional[_Iterable[_Union[VectorRecord, _Mapping]]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("version", "upserted")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    version: str
    upserted: int
    def __init__(self, version: _Optional[str] = ..., upserted: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("version", "track_ids")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    version: str
    track_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., track_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("version", "deleted")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    version: str
    deleted: int
    def __init__(self, version: _Optional[str] = ..., deleted: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("version", "track_ids", "include_embeddings")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    version: str
    track_ids: _containers.RepeatedScalarFieldContainer[str]
    include_embeddings: bool
    def __init__(self, version: _Optional[str] = ..., track_ids: _Optional[_Iterable[str]] = ..., include_embeddings: _Optional[bool] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("version", "records", "missing")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    version: str
    records: _containers.RepeatedCompositeFieldContainer[VectorRecord]
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., records: _Optional[_Iterable[_Union[VectorRecord, _Mapping]]] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("version", "embedding", "track_id", "k", "filter", "exclude_track_ids", "include_embeddings")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    version: str
    embedding: EmbeddingQuery
    track_id: str
    k: int
    filter: _types_pb2.Filter
    exclude_track_ids: _containers.RepeatedScalarFieldContainer[str]
    include_embeddings: bool
    def __init__(self, version: _Optional[str] = ..., embedding: _Optional[_Union[EmbeddingQuery, _Mapping]] = ..., track_id: _Optional[str] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., exclude_track_ids: _Optional[_Iterable[str]] = ..., include_embeddings: _Optional[bool] = ...) -> None: ...

class EmbeddingQuery(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("version", "hits")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    version: str
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    def __init__(self, version: _Optional[str] = ..., hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("track", "embedding")
    TRACK_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    track: _types_pb2.ScoredTrack
    embedding: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, track: _Optional[_Union[_types_pb2.ScoredTrack, _Mapping]] = ..., embedding: _Optional[_Iterable[float]] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("version", "filter")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    version: str
    filter: _types_pb2.Filter
    def __init__(self, version: _Optional[str] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("version", "count")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    version: str
    count: int
    def __init__(self, version: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...
