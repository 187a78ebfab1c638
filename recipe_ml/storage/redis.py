"""Redis backends: state shared by every API replica and every consumer.

Each write is one Lua script, so it is atomic and costs one round trip; a
``get`` is one ``GET``. Keys all start with ``prefix`` (default ``rml:``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import redis
from prometheus_client import Counter
from redis.backoff import NoBackoff
from redis.retry import Retry

from recipe_ml.storage.base import (
    DEDUPE_TTL_SECONDS,
    INVALIDATION_GUARD_SECONDS,
    MAX_RECENT_ITEMS,
    MAX_RECIPE_USERS,
    CatalogueFullError,
    CatalogueSnapshot,
    CatalogueStore,
    Interaction,
    InteractionStore,
    RecipeRecord,
    RecordedInteraction,
    ResponseCache,
    ShownList,
)
from recipe_ml.storage.decay import RESCALE_AFTER_HALF_LIVES, decayed, event_seconds

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "rml:"

# KEYS: entry, user index, invalidation guard. ARGV: value, ttl seconds.
_CACHE_SET = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return 1
"""

# KEYS: user index, invalidation guard. ARGV: guard milliseconds.
_CACHE_INVALIDATE = """
local keys = redis.call('SMEMBERS', KEYS[1])
for i = 1, #keys, 500 do redis.call('DEL', unpack(keys, i, math.min(i + 499, #keys))) end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return #keys
"""

# KEYS: dedupe id, user's recent list, trending counters, trending landmark, interaction log, recipe counts,
# recipe's users. ARGV: dedupe ttl, recipe id, max recent, event time, half-life seconds, rescale after, log
# record, user id, max users per recipe. The forward-decay arithmetic is the one of ``recipe_ml.storage.decay``.
_STORE_APPLY = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[5], ARGV[7])
redis.call('HINCRBY', KEYS[6], ARGV[2], 1)
redis.call('LREM', KEYS[7], 0, ARGV[8])
redis.call('LPUSH', KEYS[7], ARGV[8])
redis.call('LTRIM', KEYS[7], 0, tonumber(ARGV[9]) - 1)
redis.call('LREM', KEYS[2], 0, ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
local t = tonumber(ARGV[4])
local landmark = tonumber(redis.call('GET', KEYS[4]))
if not landmark then
  landmark = t
  redis.call('SET', KEYS[4], ARGV[4])
end
local exponent = (t - landmark) / tonumber(ARGV[5])
if exponent > tonumber(ARGV[6]) then
  redis.call('ZUNIONSTORE', KEYS[3], 1, KEYS[3], 'WEIGHTS', string.format('%.17g', 2 ^ -exponent))
  redis.call('SET', KEYS[4], ARGV[4])
  exponent = 0
end
redis.call('ZINCRBY', KEYS[3], string.format('%.17g', 2 ^ exponent), ARGV[2])
return 1
"""

# KEYS: records (id -> encoding), stamps (id -> microseconds), filter views (id -> what filters read), version.
# ARGV: the bound on the records, then per record: id, stamp, encoding, filter view.
# A write wins over the stored one as ``RecipeRecord.wins_over`` says: a later stamp, or the same stamp and an
# encoding that sorts after (Lua compares strings bytewise, as Python compares bytes).
_CATALOGUE_PUT = """
local new = {}
for i = 2, #ARGV, 4 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then new[ARGV[i]] = true end
end
local count = 0
for _ in pairs(new) do count = count + 1 end
if count > 0 and redis.call('HLEN', KEYS[1]) + count > tonumber(ARGV[1]) then return false end
local applied, changed = {}, false
for i = 2, #ARGV, 4 do
  local id, stamp, encoding, view = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local stored = tonumber(redis.call('HGET', KEYS[2], id))
  local wins = stored == nil or stamp > stored
  if not wins and stamp == stored then wins = encoding > redis.call('HGET', KEYS[1], id) end
  if wins then
    if redis.call('HGET', KEYS[3], id) ~= view then changed = true end
    redis.call('HSET', KEYS[1], id, encoding)
    redis.call('HSET', KEYS[2], id, ARGV[i + 1])
    redis.call('HSET', KEYS[3], id, view)
  end
  applied[#applied + 1] = wins and 1 or 0
end
if changed then
  -- Microseconds of the Redis clock, above the last version: a Redis that lost its data (a restart without
  -- persistence) never hands out a version a process already holds a view of.
  local now = redis.call('TIME')
  local version = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local last = tonumber(redis.call('GET', KEYS[4]) or '0')
  if version <= last then version = last + 1 end
  redis.call('SET', KEYS[4], string.format('%d', version))
end
return applied
"""


LOG_READ_CHUNK = 10_000
"""Log records read per ``LRANGE`` by ``interactions``: bounded replies, however long the log."""


def _log_record(event: Interaction, seconds: float) -> str:
    """``user,recipe,type,rating,time`` (rating empty when the event has none): one entry of the interaction log."""
    rating = "" if event.rating is None else str(event.rating)
    return f"{event.user_id},{event.recipe_id},{event.interaction_type},{rating},{seconds!r}"


def _parse_log_record(raw: bytes) -> RecordedInteraction:
    user, recipe, kind, rating, seconds = raw.decode().split(",")
    return RecordedInteraction(int(user), int(recipe), kind, int(rating) if rating else None, float(seconds))


OUTAGE_COOLDOWN_SECONDS = 1.0
"""After a connection failure or timeout, calls fail at once for this long, then one call probes."""

UNAVAILABLE = Counter(
    "recipe_redis_unavailable_total",
    "Redis calls that found Redis unreachable (connection failure, timeout, or refused at once by the breaker)",
    ["store"],
)
"""Rises for as long as Redis is out (health probes call it too), whatever the callers do with the failure:
the API degrades without saying so in its answers, so this is what an alert sees."""


class OutageBreaker:
    """Fails calls fast while Redis is known to be down, so an outage costs one timeout, not one per call.

    Why: a Redis that stalls (a paused process, a full network buffer) makes
    every call wait for the socket timeout. With many concurrent requests
    each would wait in turn, and the threads that make these calls would all
    be stuck. After a failure the breaker opens: calls raise
    ``redis.ConnectionError`` without touching the network for
    ``cooldown_seconds``; then a single call probes (the others keep failing
    fast until it returns), and its success closes the breaker. Recovery
    needs no restart. Only connection failures and timeouts count; a Redis
    that answers with an error is up.
    """

    def __init__(
        self, store: str, cooldown_seconds: float = OUTAGE_COOLDOWN_SECONDS, clock: Callable[[], float] = time.monotonic
    ):
        self._unavailable = UNAVAILABLE.labels(store)
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until: float | None = None
        self._probing = False

    @contextmanager
    def call(self) -> Iterator[None]:
        """Guard one call; raises ``redis.ConnectionError`` at once while the breaker is open."""
        with self._lock:
            open_until = self._open_until
            if open_until is not None and (self._probing or self._clock() < open_until):
                self._unavailable.inc()
                raise redis.ConnectionError("Redis unavailable (a recent call failed; retrying shortly)")
            self._probing = open_until is not None
        failed = False
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            failed = True
            self._unavailable.inc()
            raise
        finally:
            with self._lock:
                self._probing = False
                self._open_until = self._clock() + self._cooldown if failed else None


def _client(url: str, timeout_seconds: float) -> redis.Redis[bytes]:
    """A client that fails fast: the callers decide about retries."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 0),
    )


def _ping(client: redis.Redis[bytes], breaker: OutageBreaker) -> bool:
    try:
        with breaker.call():
            return bool(client.ping())
    except redis.RedisError:
        return False


class RedisCache(ResponseCache):
    """Entries ``SET key EX ttl`` plus one index set of keys per user.

    Invalidation deletes the user's indexed entries Redis-side, so it reaches
    every replica. Read and write errors are logged and read as a miss.
    """

    remote = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout_seconds: float = 0.25,
        invalidation_guard_seconds: float = INVALIDATION_GUARD_SECONDS,
    ) -> None:
        self._client = _client(url, timeout_seconds)
        self._breaker = OutageBreaker("cache")
        self._prefix = prefix
        self._guard_ms = max(1, int(invalidation_guard_seconds * 1000))
        self._set = self._client.register_script(_CACHE_SET)
        self._invalidate = self._client.register_script(_CACHE_INVALIDATE)

    def get(self, key: str) -> bytes | None:
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """One ``MGET`` for all keys (a batch request's entries)."""
        if not keys:
            return []
        try:
            with self._breaker.call():
                values = self._client.mget([self._entry(key) for key in keys])
        except redis.RedisError as exc:
            log.warning("cache get failed, serving a miss: %s", exc)
            return [None] * len(keys)
        return [value if isinstance(value, bytes) else None for value in values]

    def set(self, key: str, value: bytes, ttl_seconds: int, user_id: int | None = None) -> None:
        if ttl_seconds <= 0:
            return
        try:
            with self._breaker.call():
                if user_id is None:
                    self._client.set(self._entry(key), value, ex=ttl_seconds)
                else:
                    keys = [self._entry(key), self._index(user_id), self._guard(user_id)]
                    self._set(keys=keys, args=[value, ttl_seconds])
        except redis.RedisError as exc:
            log.warning("cache set failed, response not cached: %s", exc)

    def invalidate_user(self, user_id: int) -> None:
        with self._breaker.call():
            self._invalidate(keys=[self._index(user_id), self._guard(user_id)], args=[self._guard_ms])

    def ping(self) -> bool:
        return _ping(self._client, self._breaker)

    def _entry(self, key: str) -> str:
        return f"{self._prefix}cache:{key}"

    def _index(self, user_id: int) -> str:
        return f"{self._prefix}cache-user:{user_id}"

    def _guard(self, user_id: int) -> str:
        return f"{self._prefix}cache-guard:{user_id}"


class RedisInteractionStore(InteractionStore):
    """Dedupe keys, per-user recent lists, forward-decay counters and the interaction log in Redis.

    Counters are kept per half-life (the key names it), so processes that
    disagree on ``POPULARITY_HALF_LIFE_HOURS`` never mix their weights. The
    log (one list, ``<prefix>interactions``) keeps every applied event for
    the next retrain; it is never trimmed, since a retrain learns from all
    of it (about 40 bytes an event).
    """

    remote = True
    unavailable = (redis.RedisError, OSError)

    def __init__(
        self,
        url: str,
        half_life_hours: float,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_recent: int = MAX_RECENT_ITEMS,
        dedupe_ttl_seconds: int = DEDUPE_TTL_SECONDS,
        timeout_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
        breaker: OutageBreaker | None = None,
    ) -> None:
        """``breaker``: a test passes one on a clock of its own, to hold it open as long as it needs."""
        if half_life_hours <= 0:
            raise ValueError(f"half_life_hours must be > 0, got {half_life_hours}")
        self._client = _client(url, timeout_seconds)
        self._breaker = breaker if breaker is not None else OutageBreaker("interactions")
        self._prefix = prefix
        self._half_life = half_life_hours * 3600.0
        self._max_recent = max_recent
        self._dedupe_ttl = dedupe_ttl_seconds
        self._clock = clock
        self._apply = self._client.register_script(_STORE_APPLY)
        self._counters = f"{prefix}trending:{half_life_hours:g}h"
        self._landmark = f"{self._counters}:landmark"
        self._log = f"{prefix}interactions"
        self._counts = f"{prefix}recipe-interactions"

    def apply(self, event: Interaction) -> bool:
        keys = [
            f"{self._prefix}event:{event.dedupe_id()}",
            self._recent(event.user_id),
            self._counters,
            self._landmark,
            self._log,
            self._counts,
            self._users_of(event.recipe_id),
        ]
        seconds = event_seconds(event.timestamp, self._clock())
        args = [
            self._dedupe_ttl,
            event.recipe_id,
            self._max_recent,
            repr(seconds),
            repr(self._half_life),
            repr(RESCALE_AFTER_HALF_LIVES),
            _log_record(event, seconds),
            event.user_id,
            MAX_RECIPE_USERS,
        ]
        with self._breaker.call():
            return bool(self._apply(keys=keys, args=args))

    def recent_items(self, user_id: int, limit: int = 200) -> list[int]:
        return self.recent_items_many([user_id], limit)[0]

    def recent_items_many(self, user_ids: Sequence[int], limit: int = 200) -> list[list[int]]:
        """One pipelined round trip of ``LRANGE`` for all users (a batch request's users)."""
        if limit <= 0:
            return [[] for _ in user_ids]
        pipe = self._client.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.lrange(self._recent(user_id), 0, limit - 1)
        with self._breaker.call():
            lists = pipe.execute()
        return [[int(recipe) for recipe in items] for items in lists]

    def interactions(self) -> list[RecordedInteraction]:
        """The log in chunks of ``LOG_READ_CHUNK``: entries are only ever appended, so chunks never overlap."""
        records: list[RecordedInteraction] = []
        while True:
            with self._breaker.call():
                chunk = self._client.lrange(self._log, len(records), len(records) + LOG_READ_CHUNK - 1)
            records.extend(_parse_log_record(raw) for raw in chunk)
            if len(chunk) < LOG_READ_CHUNK:
                return records

    def remember_shown(self, shown: Sequence[ShownList], ttl_seconds: int) -> None:
        """One pipelined round trip of ``SET … EX`` for the lists (the impression log's batch)."""
        if not shown:
            return
        pipe = self._client.pipeline(transaction=False)
        for entry in shown:
            pipe.set(self._shown(entry.recommendation_id), entry.encoded(), ex=ttl_seconds)
        with self._breaker.call():
            pipe.execute()

    def shown(self, recommendation_id: str) -> ShownList | None:
        with self._breaker.call():
            raw = self._client.get(self._shown(recommendation_id))
        return None if raw is None else ShownList.decoded(raw)

    def interaction_counts(self, recipe_ids: Sequence[int]) -> list[int]:
        if not recipe_ids:
            return []
        with self._breaker.call():
            counts = self._client.hmget(self._counts, [str(recipe_id) for recipe_id in recipe_ids])
        return [0 if count is None else int(count) for count in counts]

    def recipe_users(self, recipe_ids: Sequence[int]) -> list[list[int]]:
        """One pipelined round trip of ``LRANGE`` for all recipes."""
        if not recipe_ids:
            return []
        pipe = self._client.pipeline(transaction=False)
        for recipe_id in recipe_ids:
            pipe.lrange(self._users_of(recipe_id), 0, MAX_RECIPE_USERS - 1)
        with self._breaker.call():
            lists = pipe.execute()
        return [[int(user) for user in users] for users in lists]

    def trending(self, limit: int) -> list[tuple[int, float]]:
        if limit <= 0:
            return []
        pipe = self._client.pipeline(transaction=True)
        pipe.zrevrange(self._counters, 0, limit - 1, withscores=True)
        pipe.get(self._landmark)
        with self._breaker.call():
            top, landmark = pipe.execute()
        if landmark is None:
            return []
        now = self._clock()
        return [(int(recipe), decayed(score, float(landmark), now, self._half_life)) for recipe, score in top]

    def ping(self) -> bool:
        return _ping(self._client, self._breaker)

    def _recent(self, user_id: int) -> str:
        return f"{self._prefix}recent:{user_id}"

    def _shown(self, recommendation_id: str) -> str:
        return f"{self._prefix}shown:{recommendation_id}"

    def _users_of(self, recipe_id: int) -> str:
        return f"{self._prefix}recipe-users:{recipe_id}"


class RedisCatalogue(CatalogueStore):
    """The catalogue in three hashes and a version counter, written by one Lua script per call."""

    remote = True
    unavailable = (redis.RedisError, OSError)

    def __init__(
        self, url: str, max_recipes: int, *, prefix: str = DEFAULT_PREFIX, timeout_seconds: float = 2.0
    ) -> None:
        if max_recipes < 1:
            raise ValueError(f"max_recipes must be >= 1, got {max_recipes}")
        self._client = _client(url, timeout_seconds)
        self._breaker = OutageBreaker("catalogue")
        self._max_recipes = max_recipes
        self._keys = [f"{prefix}catalogue:{part}" for part in ("records", "stamps", "filtered", "version")]
        self._put = self._client.register_script(_CATALOGUE_PUT)

    def put(self, records: Sequence[RecipeRecord]) -> list[bool]:
        if not records:
            return []
        args: list[str | int | bytes] = [self._max_recipes]
        for record in records:
            args += [str(record.recipe_id), record.stamp, record.encoded(), record.filtered_as]
        with self._breaker.call():
            applied = self._put(keys=self._keys, args=args)
        if applied is None:
            raise CatalogueFullError(self._max_recipes)
        return [bool(flag) for flag in applied]

    def get(self, recipe_ids: Sequence[int]) -> list[RecipeRecord | None]:
        if not recipe_ids:
            return []
        with self._breaker.call():
            raws = self._client.hmget(self._keys[0], [str(recipe_id) for recipe_id in recipe_ids])
        return [None if raw is None else RecipeRecord.decoded(raw) for raw in raws]

    def version(self) -> int:
        with self._breaker.call():
            raw = self._client.get(self._keys[3])
        return 0 if raw is None else int(raw)

    def snapshot(self) -> CatalogueSnapshot:
        """The version and the records in one transaction (``MULTI``): no write falls between them."""
        pipe = self._client.pipeline(transaction=True)
        pipe.get(self._keys[3])
        pipe.hvals(self._keys[0])
        with self._breaker.call():
            version, raws = pipe.execute()
        records = tuple(RecipeRecord.decoded(raw) for raw in raws)
        return CatalogueSnapshot(0 if version is None else int(version), records)

    def ping(self) -> bool:
        return _ping(self._client, self._breaker)
