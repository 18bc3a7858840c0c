"""MongoDB Atlas: ``$vectorSearch`` and Atlas Search ``$search`` when the cluster has them.

Detected at run time (``listSearchIndexes`` answers on Atlas and on mongod with mongot; elsewhere it
fails with CommandNotSupported/CommandNotFound); the result is cached per collection. Only the
"not supported → local path" branch can be exercised here (SecantusDB has neither); the pipelines
are built by pure functions that the tests check for shape and for literal (never operator) values.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.operations import SearchIndexModel

from app.services.mongo_documents import created_between
from app.services.search.query import ParsedQuery

logger = logging.getLogger(__name__)

VECTOR_INDEX = "interactions_vector"
TEXT_INDEX = "interactions_text"
EMBEDDING_DIMS = 384
NUM_CANDIDATES_FACTOR = 10
# Atlas maps dotProduct similarity to (1 + cosine) / 2; 0.6 is a cosine of 0.2, the local threshold.
MIN_VECTOR_SCORE = 0.6

_support: dict[str, bool] = {}
_support_lock = threading.Lock()


def vector_index_definition() -> dict[str, Any]:
    return {
        "name": VECTOR_INDEX,
        "type": "vectorSearch",
        "definition": {
            "fields": [
                {"type": "vector", "path": "embedding", "numDimensions": EMBEDDING_DIMS, "similarity": "dotProduct"},
                {"type": "filter", "path": "owner"},
                {"type": "filter", "path": "model"},
                {"type": "filter", "path": "status"},
                {"type": "filter", "path": "created_at"},
            ]
        },
    }


def text_index_definition() -> dict[str, Any]:
    return {
        "name": TEXT_INDEX,
        "type": "search",
        "definition": {
            "mappings": {
                "dynamic": False,
                "fields": {
                    "prompt": {"type": "string"},
                    "output": {"type": "string"},
                    "owner": {"type": "token"},
                    "model": {"type": "token"},
                    "status": {"type": "token"},
                    "created_at": {"type": "date"},
                },
            }
        },
    }


def _key(collection: Collection[dict[str, Any]]) -> str:
    return f"{collection.database.client.address}/{collection.full_name}"


def search_supported(collection: Collection[dict[str, Any]]) -> bool:
    """Whether this deployment has Atlas Search / Vector Search (asked once per collection and process)."""
    key = _key(collection)
    if key in _support:
        return _support[key]
    with _support_lock:
        if key not in _support:
            try:
                list(collection.list_search_indexes())
                _support[key] = True
            except OperationFailure as exc:
                logger.info("Atlas Search not available (%s): local search path", exc.code)
                _support[key] = False
            except PyMongoError as exc:
                logger.warning("Atlas Search detection failed (%s): local search path", exc.__class__.__name__)
                return False
    return _support[key]


def reset_detection() -> None:
    with _support_lock:
        _support.clear()


def ensure_search_indexes(collection: Collection[dict[str, Any]]) -> list[str]:
    """Create the Atlas index definitions when the deployment supports them (else nothing)."""
    if not search_supported(collection):
        return []
    existing = {index.get("name") for index in collection.list_search_indexes()}
    wanted = [d for d in (vector_index_definition(), text_index_definition()) if d["name"] not in existing]
    if not wanted:
        return []
    models = [SearchIndexModel(definition=d["definition"], name=d["name"], type=d["type"]) for d in wanted]
    return list(collection.create_search_indexes(models))


def _filter(owner_query: dict[str, Any], query: ParsedQuery, model: str, status: str) -> dict[str, Any]:
    clauses: dict[str, Any] = {key: {"$eq": value} for key, value in owner_query.items()}
    if model:
        clauses["model"] = {"$eq": model}
    if status:
        clauses["status"] = {"$eq": status}
    dates = created_between(query.after, query.before)
    if dates:
        clauses["created_at"] = dates
    return clauses


def vector_search_pipeline(
    *, vector: list[float], owner_query: dict[str, Any], query: ParsedQuery, model: str, status: str, limit: int
) -> list[dict[str, Any]]:
    stage: dict[str, Any] = {
        "index": VECTOR_INDEX,
        "path": "embedding",
        "queryVector": [float(x) for x in vector],
        "numCandidates": limit * NUM_CANDIDATES_FACTOR,
        "limit": limit,
    }
    clauses = _filter(owner_query, query, model, status)
    if clauses:
        stage["filter"] = clauses
    return [
        {"$vectorSearch": stage},
        {"$project": {"_id": 1, "model": 1, "status": 1, "created_at": 1, "score": {"$meta": "vectorSearchScore"}}},
    ]


def text_search_pipeline(
    *, owner_query: dict[str, Any], query: ParsedQuery, model: str, status: str, limit: int
) -> list[dict[str, Any]]:
    should: list[dict[str, Any]] = [
        {
            "text": {
                "query": list(query.all_terms),
                "path": "prompt",
                "fuzzy": {"maxEdits": 1},
                "score": {"boost": {"value": 2}},
            }
        },
        {"text": {"query": list(query.all_terms), "path": "output", "fuzzy": {"maxEdits": 1}}},
    ]
    must: list[dict[str, Any]] = [
        {"phrase": {"query": " ".join(p), "path": ["prompt", "output"]}} for p in query.phrases
    ]
    must_not: list[dict[str, Any]] = (
        [{"text": {"query": list(query.excluded), "path": ["prompt", "output"]}}] if query.excluded else []
    )
    filters = [{"equals": {"path": key, "value": value}} for key, value in owner_query.items()]
    if model:
        filters.append({"equals": {"path": "model", "value": model}})
    if status:
        filters.append({"equals": {"path": "status", "value": status}})
    compound: dict[str, Any] = {"should": should, "minimumShouldMatch": 1, "filter": filters}
    if must:
        compound["must"] = must
    if must_not:
        compound["mustNot"] = must_not
    return [
        {"$search": {"index": TEXT_INDEX, "compound": compound}},
        {"$limit": limit},
        {"$project": {"_id": 1, "score": {"$meta": "searchScore"}}},
    ]
