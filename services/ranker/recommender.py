"""The ranker's domain: similar tracks, recommendations and session updates (no gRPC).

Every answer goes through the same steps: choose the version (:mod:`routing`), get a
query vector (a seed track, uploaded audio, or the user's taste from their events),
retrieve candidates from the vector store, re-rank them (:mod:`ranking`: exclusions,
skip avoidance, artist cap, diversity), then log an impression under a fresh request id
so that the user's later events are attributed to the version and experiment arm.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from services.catalog.audio_store import read_uri
from services.common.audio import AudioLimits, decode_checked
from services.common.errors import InvalidArgument, NotFound, Unavailable
from services.common.names import check_track_id
from services.embedder.interface import TrackEmbedder
from services.feedback.events import EventLog, Impression, UserEvent
from services.ranker.ranking import (
    Candidate,
    Ranked,
    Signals,
    random_directions,
    rerank,
    signals_from_events,
    taste_vector,
)
from services.ranker.routing import Route, VersionRouter
from services.ranker.settings import RankerSettings
from services.vectorstore.client import VectorStoreClient
from services.vectorstore.filters import conjunction, quote
from services.vectorstore.records import SearchHit, TrackMetadata

logger = logging.getLogger(__name__)

# The vector store's limits (proto/hearby/vectorstore/v1/vectorstore.proto).
_MAX_SEARCH_K = 1000
_MAX_IDS = 1024
_MAX_USER_ID = 128
# Random directions a cold start without popularity data spreads its search over.
_COLD_DIRECTIONS = 4
# MMR trade-off of a cold-start list: there is no taste to be relevant to, so breadth
# across the catalog (genres, artists) matters more than closeness to the centroid.
_COLD_LAMBDA = 0.4


@dataclass(frozen=True)
class Track:
    """One track of an answer: cosine similarity to the query and its labels."""

    track_id: str
    score: float
    metadata: TrackMetadata


@dataclass(frozen=True)
class Answer:
    """What one request (or one session update) returns.

    Args:
        request_id: Unique id of this answer; events about its tracks should carry it.
        route: The version that produced it, and why.
        tracks: In recommended order.
        cold_start: True when the user had no usable history and no seeds.
        explanation: How the list was made, for humans.
    """

    request_id: str
    route: Route
    tracks: list[Track]
    cold_start: bool = False
    explanation: str = ""


@dataclass(frozen=True)
class AudioSeed:
    """Seed audio supplied by the caller: encoded bytes or a URI (exactly one)."""

    data: bytes | None = None
    uri: str | None = None


@dataclass
class SessionState:
    """One live session: its fixed settings and the events seen so far (newest first).

    Args:
        user_id: The listener.
        k: List size of each update.
        filter_expression: Filter applied to every update.
        route: The version, fixed for the whole session.
        history: Stored events the session started from (newest first).
        events: Events of this session (newest first).
    """

    user_id: str
    k: int
    filter_expression: str
    route: Route
    history: list[UserEvent]
    events: list[UserEvent] = field(default_factory=list)


def new_request_id() -> str:
    """A fresh request id (UUID4, hex)."""
    return uuid.uuid4().hex


def check_user_id(user_id: str, required: bool) -> str:
    """Returns ``user_id`` if acceptable.

    Raises:
        InvalidArgument: Empty when required, or longer than 128 characters.
    """
    if required and not user_id:
        raise InvalidArgument("user_id is empty; send the id of the listener")
    if len(user_id) > _MAX_USER_ID:
        raise InvalidArgument(f"user_id is {len(user_id)} characters; at most 128 are allowed")
    return user_id


class Recommender:
    """Similar tracks, recommendations and session updates over the real services.

    Args:
        router: Chooses each request's version.
        vectors: The vector store client.
        events: User events, history and impressions.
        embedder: Embeds uploaded seed audio; None refuses audio seeds.
        settings: Limits and defaults.
    """

    def __init__(
        self,
        router: VersionRouter,
        vectors: VectorStoreClient,
        events: EventLog,
        embedder: TrackEmbedder | None,
        settings: RankerSettings,
    ) -> None:
        self._router = router
        self._vectors = vectors
        self._events = events
        self._embedder = embedder
        self._settings = settings
        self._limits = AudioLimits(
            max_bytes=settings.max_audio_bytes, max_seconds=settings.max_audio_seconds
        )

    # -- checks -------------------------------------------------------------------------

    def check_k(self, k: int, what: str = "k") -> int:
        """Returns ``k`` if in 1..max_k.

        Raises:
            InvalidArgument: Otherwise; the message gives the range.
        """
        if not 1 <= k <= self._settings.max_k:
            raise InvalidArgument(f"{what} is {k}; ask for 1 to {self._settings.max_k} tracks")
        return k

    # -- Similar ------------------------------------------------------------------------

    async def similar(
        self,
        *,
        track_id: str | None,
        audio: AudioSeed | None,
        k: int,
        filter_expression: str = "",
        version: str = "",
        by: str = "",
        exclude_same_artist: bool = False,
        user_id: str = "",
    ) -> Answer:
        """The k tracks nearest to a catalog track or to uploaded audio, seed excluded.

        Raises:
            InvalidArgument: No seed, a bad id, k, filter or audio.
            ResourceExhausted: Audio over the size limit.
            NotFound: Unknown track or version.
            FailedPrecondition: The version cannot serve.
            Unavailable: A dependency is down, or the embedder is loading the version
                again after a restart.
        """
        self.check_k(k)
        check_user_id(user_id, required=False)
        if track_id is None and audio is None:
            raise InvalidArgument("give a seed: track_id or audio")
        if track_id is not None:
            check_track_id(track_id)
        route = await self._router.route(version=version, by=by, user_id=user_id)
        name = route.version.name
        if track_id is not None and not exclude_same_artist:
            # The store looks the seed's vector up itself: one round trip instead of two
            # (NOT_FOUND, naming the track and version, when it is not stored).
            result = await self._vectors.search(
                name,
                k,
                track_id=track_id,
                filter_expression=filter_expression,
                exclude_track_ids=[track_id],
            )
        else:
            exclude: list[str] = []
            expression = filter_expression
            if track_id is not None:
                got = await self._vectors.get(name, [track_id], include_embeddings=True)
                if not got.records:
                    raise NotFound(f"track {track_id!r} is not stored in version {name!r}")
                seed = got.records[0]
                query = seed.embedding
                exclude.append(track_id)
                if seed.metadata.artist:
                    artist = quote(seed.metadata.artist)
                    expression = conjunction(filter_expression, f"artist != {artist}")
            else:
                query = await self._embed_audio(name, audio)
            result = await self._vectors.search(
                name, k, embedding=query, filter_expression=expression, exclude_track_ids=exclude
            )
        tracks = [Track(h.track_id, h.score, h.metadata) for h in result.hits]
        return await self._answer(route, user_id, tracks)

    async def _embed_audio(self, version: str, audio: AudioSeed | None) -> np.ndarray:
        if self._embedder is None:
            raise InvalidArgument("this ranker does not embed audio; send a track_id")
        assert audio is not None
        if audio.uri is not None:
            data = await asyncio.to_thread(
                read_uri, audio.uri, self._limits.max_bytes, self._settings.audio_uri_prefixes
            )
        elif audio.data:
            data = audio.data
        else:
            raise InvalidArgument("audio is empty: send the encoded file's bytes or a URI")
        waveform, rate = await asyncio.to_thread(decode_checked, data, self._limits, "audio")
        try:
            embedded = await self._embedder.embed_track(version, waveform, rate)
        except NotFound as exc:
            # The route is a READY version, so it was loaded: the embedder lost it in a
            # restart, and the control service's reconciler loads it again. A retry will
            # succeed, so this is UNAVAILABLE, not NOT_FOUND (which says: stop asking).
            raise Unavailable(
                f"version {version!r} is being loaded into the embedder again; retry later "
                f"({exc.message})"
            ) from exc
        return embedded.embedding

    # -- Recommend ----------------------------------------------------------------------

    async def recommend(
        self,
        *,
        user_id: str,
        k: int,
        seed_track_ids: Sequence[str] = (),
        filter_expression: str = "",
        version: str = "",
        diversity_lambda: float | None = None,
        max_per_artist: int | None = None,
    ) -> Answer:
        """The k recommendations from the user's recent events and explicit seeds.

        Args:
            user_id: The listener (required).
            k: List size.
            seed_track_ids: Explicit seeds (at most ``max_seeds``), added to the history.
            filter_expression: Optional filter.
            version: Explicit version ("" lets the router choose).
            diversity_lambda: MMR trade-off in [0, 1]; None for the service default.
            max_per_artist: Artist cap; None for the service default, 0 for no cap.

        Raises:
            InvalidArgument: Empty user id, bad k, seeds, filter or lambda.
            NotFound: An explicit seed or version is unknown.
            FailedPrecondition: The version cannot serve.
            Unavailable: A dependency is down.
        """
        check_user_id(user_id, required=True)
        self.check_k(k)
        seeds = list(dict.fromkeys(seed_track_ids))
        if len(seeds) > self._settings.max_seeds:
            raise InvalidArgument(
                f"{len(seeds)} seed tracks; at most {self._settings.max_seeds} are allowed"
            )
        for i, seed in enumerate(seeds):
            check_track_id(seed, f"seed_track_ids[{i}]")
        lam = self._settings.diversity_lambda if diversity_lambda is None else diversity_lambda
        if not 0.0 <= lam <= 1.0:
            raise InvalidArgument(f"diversity_lambda is {lam}; it must be in [0, 1]")
        cap = self._settings.max_per_artist if max_per_artist is None else max_per_artist
        route = await self._router.route(version=version, user_id=user_id)
        history = await self._events.history(user_id, self._settings.history_events)
        return await self._personal(route, user_id, k, filter_expression, history, seeds, lam, cap)

    async def _personal(
        self,
        route: Route,
        user_id: str,
        k: int,
        filter_expression: str,
        history: Sequence[UserEvent],
        seeds: Sequence[str],
        lam: float,
        cap: int,
    ) -> Answer:
        """A personal list from events (newest first) and seeds; cold start if neither."""
        name = route.version.name
        signals = signals_from_events(history, seeds=seeds)
        wanted = list(dict.fromkeys([*seeds, *signals.positive, *signals.negative]))[:_MAX_IDS]
        embeddings: dict[str, np.ndarray] = {}
        if wanted:
            got = await self._vectors.get(name, wanted, include_embeddings=True)
            missing = set(got.missing)
            missing_seeds = [s for s in seeds if s in missing]
            if missing_seeds:
                raise NotFound(
                    f"seed track(s) {', '.join(missing_seeds)} are not in the catalog of "
                    f"version {name!r}"
                )
            embeddings = {r.track_id: r.embedding for r in got.records if r.embedding is not None}
        query = taste_vector(signals, embeddings)
        if query is None:
            return await self._cold_start(route, user_id, k, filter_expression, signals, cap)
        avoid = [embeddings[t] for t in signals.negative if t in embeddings]
        # Exclusions are passed to the search as well, so that they do not use up the pool;
        # the vector store takes at most 1024 (the most recent ones, events are newest first).
        seen = list(dict.fromkeys([*seeds, *(e.track_id for e in history)]))[:_MAX_IDS]
        pool = min(_MAX_SEARCH_K, max(self._settings.min_pool, k * self._settings.pool_factor))
        result = await self._vectors.search(
            name,
            pool,
            embedding=query,
            filter_expression=filter_expression,
            exclude_track_ids=seen,
            include_embeddings=True,
        )
        ranked = rerank(
            [_candidate(h) for h in result.hits],
            k,
            diversity_lambda=lam,
            max_per_artist=cap,
            exclude=signals.seen,
            avoid=avoid,
            avoid_weight=self._settings.skip_avoid_weight,
        )
        return await self._answer(
            route, user_id, _tracks(ranked), explanation=_explain(signals, seeds, lam, cap)
        )

    async def _cold_start(
        self,
        route: Route,
        user_id: str,
        k: int,
        filter_expression: str,
        signals: Signals,
        cap: int,
    ) -> Answer:
        """A list for a user with nothing to go on: popular tracks, or a spread, diversified.

        Popular tracks (most played and liked across all users) are the usual cold start;
        with a filter, or before anyone has played anything, the list is a deterministic
        spread over the catalog instead (searches from random directions seeded by the
        user id), so each new user sees a varied, stable list.
        """
        name = route.version.name
        pool = min(_MAX_SEARCH_K, max(self._settings.min_pool, k * self._settings.pool_factor))
        candidates: list[Candidate] = []
        how = ""
        if not filter_expression:
            popular = await self._events.popular(min(pool, _MAX_IDS))
            if popular:
                got = await self._vectors.get(name, popular, include_embeddings=True)
                records = [r for r in got.records if r.embedding is not None]
                if records:
                    vectors = np.stack([r.embedding for r in records])  # (n, D)
                    centre = vectors.mean(axis=0)
                    centre /= max(float(np.linalg.norm(centre)), 1e-12)
                    candidates = [
                        Candidate(r.track_id, float(v @ centre), v, r.metadata.artist, r.metadata)
                        for r, v in zip(records, vectors, strict=True)
                    ]
                    how = f"popular tracks ({len(records)} candidates), diversified"
        if not candidates:
            directions = random_directions(
                user_id or "anonymous", _COLD_DIRECTIONS, route.version.dimension
            )
            per = max(1, pool // _COLD_DIRECTIONS)
            results = await asyncio.gather(
                *(
                    self._vectors.search(
                        name,
                        per,
                        embedding=d,
                        filter_expression=filter_expression,
                        exclude_track_ids=list(signals.seen)[:_MAX_IDS],
                        include_embeddings=True,
                    )
                    for d in directions
                )
            )
            candidates = [_candidate(h) for r in results for h in r.hits]
            how = "a spread over the catalog (no plays recorded yet or a filter is set)"
        ranked = rerank(
            candidates, k, diversity_lambda=_COLD_LAMBDA, max_per_artist=cap, exclude=signals.seen
        )
        return await self._answer(
            route,
            user_id,
            _tracks(ranked),
            cold_start=True,
            explanation=f"cold start: no listening history and no seeds; {how}",
        )

    # -- Session ------------------------------------------------------------------------

    async def open_session(
        self, user_id: str, k: int, filter_expression: str = "", version: str = ""
    ) -> SessionState:
        """Starts a session: checks its settings, fixes its version, reads recent history.

        Raises:
            InvalidArgument: Empty user id or bad k.
            NotFound, FailedPrecondition, Unavailable: As for Recommend.
        """
        check_user_id(user_id, required=True)
        self.check_k(k)
        route = await self._router.route(version=version, user_id=user_id)
        history = []
        if self._settings.session_history_events:
            history = await self._events.history(user_id, self._settings.session_history_events)
        return SessionState(user_id, k, filter_expression, route, history)

    async def session_event(self, state: SessionState, event: UserEvent) -> None:
        """Stores one session event (it feeds the user's history and the A/B metrics).

        Raises:
            InvalidArgument: A malformed event.
            Unavailable: Redis is down.
        """
        await self._events.record([event])
        state.events.insert(0, event)

    async def session_update(self, state: SessionState) -> Answer:
        """The session's next list, from its events (newest first) and the stored history."""
        # The history was read when the session opened, so it holds none of its events.
        events = [*state.events, *state.history]
        return await self._personal(
            state.route,
            state.user_id,
            state.k,
            state.filter_expression,
            events,
            (),
            self._settings.diversity_lambda,
            self._settings.max_per_artist,
        )

    # -- impressions --------------------------------------------------------------------

    async def _answer(
        self,
        route: Route,
        user_id: str,
        tracks: list[Track],
        *,
        cold_start: bool = False,
        explanation: str = "",
    ) -> Answer:
        request_id = new_request_id()
        if not user_id:
            # An anonymous Similar: no user, so no experiment arm and no events to
            # attribute; logging it would only cost a write.
            return Answer(request_id, route, tracks, cold_start, explanation)
        await self._events.record_impression(
            Impression(
                request_id=request_id,
                user_id=user_id,
                version=route.version.name,
                experiment=route.experiment,
                arm=route.arm,
                track_ids=tuple(t.track_id for t in tracks),
            )
        )
        return Answer(request_id, route, tracks, cold_start, explanation)


def _candidate(hit: SearchHit) -> Candidate:
    assert hit.embedding is not None  # searched with include_embeddings
    return Candidate(hit.track_id, hit.score, hit.embedding, hit.metadata.artist, hit.metadata)


def _tracks(ranked: Sequence[Ranked]) -> list[Track]:
    # The score stays the cosine to the query (the proto's promise), not the MMR value.
    return [Track(r.candidate.track_id, r.candidate.score, r.candidate.payload) for r in ranked]


def _explain(signals: Signals, seeds: Sequence[str], lam: float, cap: int) -> str:
    history = len(signals.positive) - len(set(seeds) & set(signals.positive))
    parts = [f"from {history} recent track(s) played or liked"]
    if seeds:
        parts.append(f"{len(seeds)} seed(s)")
    text = " and ".join(parts)
    if signals.negative:
        text += f"; {len(signals.negative)} skipped or disliked track(s) avoided"
    cap_text = f"at most {cap} per artist" if cap else "no artist cap"
    return f"{text}; diversity lambda {lam:.2f}, {cap_text}"
