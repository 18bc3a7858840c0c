"""History listings in (created_at desc, _id desc) order: the windowed keyset scan.

Why this exists: the local store (SecantusDB) materialises every document that matches a query
before it sorts, so a plain ``find(owner).sort(created_at).limit(20)`` costs the whole history
(about 1.5 s at 100k interactions). This scan asks for bounded ``created_at`` windows instead —
each query an index range with a bounded number of candidates — and sizes the next window from
what the last one held, so a page costs about the same at 1k or 100k interactions. Day documents
(one per owner and UTC day) let it jump over empty stretches.

A server that sorts by index (MongoDB, Atlas) does not need it: ``MONGO_WINDOWED_SCAN=0`` switches
to ``plain_scan``, one sorted, limited query per page.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import DESCENDING, UpdateOne
from pymongo.collection import Collection

from app.domain.filters import HistoryFilter
from app.domain.ids import utc_now
from app.domain.interaction import Scope
from app.services.mongo_documents import MAX_WINDOW_MS, Position, created_between

FIRST_WINDOW = timedelta(minutes=1)
WINDOW_GROWTH = 4
WINDOW_TARGET_DOCS = 500
OLDEST = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)
MIN_WINDOW = timedelta(seconds=1)
NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]

Documents = Collection[dict[str, Any]]


@dataclass(frozen=True)
class ScanRequest:
    """Which documents a listing wants: whose, narrowed how, after which row, how many (None: all)."""

    scope: Scope
    filters: HistoryFilter
    after: Position | None = None
    want: int | None = None
    window: timedelta | None = None  # the first window's size (a hint carried by the cursor)


def scan_history(
    collection: Documents, days: Documents, request: ScanRequest, *, windowed: bool
) -> Iterator[dict[str, Any]]:
    """Matching documents newest first: the windowed scan, or one plain query (``MONGO_WINDOWED_SCAN=0``)."""
    if windowed:
        return WindowedScan(collection, days).scan(request)
    return plain_scan(collection, request)


def day_of(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def record_days(days: Documents, entries: Iterable[tuple[str, datetime]]) -> None:
    """Remember, per owner and UTC day, the newest interaction time (history pages skip empty stretches)."""
    newest: dict[tuple[str, datetime], datetime] = {}
    for owner, created_at in entries:
        key = (owner, day_of(created_at))
        newest[key] = max(created_at, newest.get(key, created_at))
    if not newest:
        return
    updates = [
        UpdateOne(
            {"_id": f"{owner}|{day:%Y-%m-%d}"},
            {"$set": {"owner": owner, "day": day}, "$max": {"newest": moment}},
            upsert=True,
        )
        for (owner, day), moment in newest.items()
    ]
    days.bulk_write(updates, ordered=False)


def next_page_window(*, top: datetime, bottom: datetime, limit: int) -> timedelta:
    """The next page likely spans as much time as this one took to fill: the window hint its cursor carries."""
    span = (top - bottom) * (limit + 1) / limit * 1.25
    return min(max(span, MIN_WINDOW), timedelta(milliseconds=MAX_WINDOW_MS))


def _base_query(scope: Scope, filters: HistoryFilter) -> dict[str, Any]:
    base: dict[str, Any] = dict(scope.query())
    term = filters.driving_term()
    if term is not None:
        base[term[0]] = term[1]
    return base


def _is_exact(scope: Scope, filters: HistoryFilter) -> bool:
    """When the indexed query is the whole condition, the server may stop at ``want`` documents."""
    return not scope.shared and not filters.narrows_beyond_owner


def _fetch(
    collection: Documents, query: dict[str, Any], filters: HistoryFilter, *, exact: bool, want: int | None
) -> Iterator[dict[str, Any]]:
    cursor = collection.find(query).sort(NEWEST_FIRST)
    if exact and want is not None:
        cursor = cursor.limit(want)
    docs = list(cursor) if want is not None else cursor
    for doc in docs:
        if filters.accepts(doc):
            yield doc


def plain_scan(collection: Documents, request: ScanRequest) -> Iterator[dict[str, Any]]:
    """One sorted query strictly after ``after`` (for servers whose sort walks the index)."""
    scope, filters, after = request.scope, request.filters, request.after
    query = _base_query(scope, filters)
    created = created_between(filters.since, filters.until)
    if created:
        query["created_at"] = created
    if after is not None:
        query["$or"] = [
            {"created_at": {"$lt": after.created_at}},
            {"created_at": after.created_at, "_id": {"$lt": after.id}},
        ]
    yield from _fetch(collection, query, filters, exact=_is_exact(scope, filters), want=request.want)


class WindowedScan:
    """Matching documents, newest first, read window by window (see the module docstring)."""

    def __init__(self, collection: Documents, days: Documents) -> None:
        self.collection = collection
        self.days = days

    def scan(self, request: ScanRequest) -> Iterator[dict[str, Any]]:
        """Matching documents in (created_at desc, _id desc) order, strictly after ``request.after``.

        Each query is ``{owner, [one search key], created_at in [lo, hi)}`` — an index range — and
        the next window is sized from what the last one held (×4 when empty, at most ×16).
        ``filters.accepts`` checks the remaining conditions on each fetched document.
        """
        scope, filters, after, want = request.scope, request.filters, request.after, request.want
        base = _base_query(scope, filters)
        exact = _is_exact(scope, filters)
        upper = filters.until
        found = 0
        if after is not None and (upper is None or after.created_at < upper):
            # Same millisecond, smaller _id first: one exact index lookup for the ties.
            ties = {**base, "created_at": after.created_at, "_id": {"$lt": after.id}}
            for doc in _fetch(self.collection, ties, filters, exact=exact, want=want):
                found += 1
                yield doc
            upper = after.created_at
        lower_limit = filters.since or OLDEST
        window = request.window or FIRST_WINDOW
        newest_seen: datetime | None = None
        in_windows = 0
        while True:
            if upper is not None and upper <= lower_limit:
                return
            top = upper if upper is not None else utc_now()
            lower = top - window
            last = lower <= lower_limit
            condition: dict[str, Any] = {}
            if not last or filters.since is not None:
                # ``$gt`` one millisecond earlier means ``$gte`` (BSON dates are milliseconds); SecantusDB
                # 0.7 drops the inclusive end of a range walked on a descending index, ``$gt`` is exact.
                condition["$gt"] = max(lower, lower_limit) - ONE_MS
            if upper is not None:
                condition["$lt"] = upper
            query = {**base, "created_at": condition} if condition else dict(base)
            remaining = None if want is None else want - found
            batch = 0
            for doc in _fetch(self.collection, query, filters, exact=exact, want=remaining):
                batch += 1
                found += 1
                newest_seen = newest_seen or doc["created_at"]
                yield doc
            if last:
                return
            upper = max(lower, lower_limit)
            in_windows += batch
            if batch == 0:
                # Nothing here: jump over the stretch the day documents say is empty (after one check,
                # normally empty, so a write that bypassed the repository is still found).
                target = self._newest_before(scope, upper)
                skip_to = max(target + ONE_MS if target is not None else lower_limit, lower_limit)
                if skip_to < upper:
                    check = {**base, "created_at": {"$gt": skip_to - ONE_MS, "$lt": upper}}
                    rest = None if want is None else want - found
                    for doc in _fetch(self.collection, check, filters, exact=exact, want=rest):
                        found += 1
                        newest_seen = newest_seen or doc["created_at"]
                        yield doc
                    upper = skip_to
                    if target is None:
                        return
                    continue
            window = self._next_window(window, lower, batch, in_windows, newest_seen, want, found)

    def _newest_before(self, scope: Scope, before: datetime) -> datetime | None:
        """The newest recorded interaction time before ``before`` (via the day documents), or None."""
        query: dict[str, Any] = {**scope.query(), "day": {"$lt": before}}
        for doc in self.days.find(query).sort([("day", DESCENDING)]).limit(1):
            newest: datetime = doc["newest"]
            if newest < before:
                return newest
            return before - ONE_MS  # that day is still active just before ``before``
        return None

    @staticmethod
    def _next_window(
        window: timedelta,
        lower: datetime,
        batch: int,
        in_windows: int,
        newest_seen: datetime | None,
        want: int | None,
        found: int,
    ) -> timedelta:
        """Size the next window from the density seen so far (empty gaps before the first hit do not count)."""
        if batch == 0 or newest_seen is None:
            grown = window * WINDOW_GROWTH
        else:
            needed = WINDOW_TARGET_DOCS if want is None else max(1, want - found)
            covered = max(newest_seen - lower, ONE_MS)
            grown = covered * (needed / in_windows) * 1.25
            grown = min(max(grown, window / 2, ONE_MS * 10), window * 16)
        return min(grown, timedelta(milliseconds=MAX_WINDOW_MS))
