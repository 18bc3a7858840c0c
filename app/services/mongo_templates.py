"""Prompt templates in MongoDB: the ``<collection>_templates`` sibling collection, one document each.

``{_id, owner, name, body, created_at, updated_at}``; ``(owner, name)`` is unique (index
``owner_name_unique``), and every query carries the owner, so another visitor's template is simply
not found (404). Writes use the repository's journaled write concern (the sibling collection comes
from the same database object). In a shared history (``HISTORY_SHARED=1``) the templates are shared
too: they all belong to ``SHARED_OWNER``.
"""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from app.domain.ids import utc_now
from app.domain.interaction import Scope
from app.domain.templates import PromptTemplate, template_variables
from app.errors import (
    TEMPLATE_NAME_TAKEN,
    TEMPLATE_TOO_MANY,
    InvalidTemplate,
    TemplateNotFound,
)
from app.services.mongo_indexes import TEMPLATE_INDEXES, TEMPLATES_SUFFIX
from app.services.mongo_repo import InteractionRepository, store_errors

SHARED_OWNER = "*shared"
MAX_TEMPLATES = 200

_indexed: weakref.WeakSet[InteractionRepository] = weakref.WeakSet()


def template_owner(scope: Scope) -> str:
    return SHARED_OWNER if scope.shared else scope.owner


def _collection(repo: InteractionRepository) -> Collection[dict[str, Any]]:
    collection = repo.sibling(TEMPLATES_SUFFIX)
    if repo not in _indexed:  # the unique name index, also where ensure_indexes has not run yet
        collection.create_indexes(list(TEMPLATE_INDEXES))
        _indexed.add(repo)
    return collection


def _object_id(template_id: str) -> ObjectId:
    if not isinstance(template_id, str) or len(template_id) != 24 or not ObjectId.is_valid(template_id):
        raise TemplateNotFound()
    return ObjectId(template_id)


def _from_document(doc: dict[str, Any]) -> PromptTemplate:
    body = str(doc.get("body", ""))
    try:
        variables = template_variables(body)
    except InvalidTemplate:  # written by something else than this app: shown, never filled
        variables = ()
    created: datetime = doc.get("created_at") or utc_now()
    return PromptTemplate(
        id=str(doc["_id"]),
        name=str(doc.get("name", "")),
        body=body,
        created_at=created,
        updated_at=doc.get("updated_at") or created,
        variables=variables,
    )


def _taken(name: str) -> InvalidTemplate:
    return InvalidTemplate(TEMPLATE_NAME_TAKEN.format(name=name), field="name")


def list_templates(repo: InteractionRepository, *, scope: Scope) -> list[PromptTemplate]:
    with store_errors("templates"):
        docs = _collection(repo).find({"owner": template_owner(scope)}).sort("name", ASCENDING).limit(MAX_TEMPLATES)
        return [_from_document(doc) for doc in docs]


def get_template(repo: InteractionRepository, template_id: str, *, scope: Scope) -> PromptTemplate:
    object_id = _object_id(template_id)
    with store_errors("templates"):
        doc = _collection(repo).find_one({"_id": object_id, "owner": template_owner(scope)})
    if doc is None:
        raise TemplateNotFound()
    return _from_document(doc)


def create_template(repo: InteractionRepository, *, scope: Scope, name: str, body: str) -> PromptTemplate:
    """Store a new template (``name`` and ``body`` already checked); a taken name is a 422 on ``name``."""
    owner = template_owner(scope)
    now = utc_now()
    doc = {"_id": ObjectId(), "owner": owner, "name": name, "body": body, "created_at": now, "updated_at": now}
    with store_errors("templates"):
        collection = _collection(repo)
        if collection.find_one({"owner": owner, "name": name}, {"_id": 1}) is not None:
            raise _taken(name)
        if collection.count_documents({"owner": owner}) >= MAX_TEMPLATES:
            raise InvalidTemplate(TEMPLATE_TOO_MANY.format(limit=MAX_TEMPLATES), field="name")
        try:
            collection.insert_one(doc)
        except DuplicateKeyError:
            raise _taken(name) from None
    return _from_document(doc)


def update_template(
    repo: InteractionRepository, template_id: str, *, scope: Scope, name: str, body: str
) -> PromptTemplate:
    object_id = _object_id(template_id)
    owner = template_owner(scope)
    with store_errors("templates"):
        collection = _collection(repo)
        other = collection.find_one({"owner": owner, "name": name, "_id": {"$ne": object_id}}, {"_id": 1})
        if other is not None:
            if collection.find_one({"_id": object_id, "owner": owner}, {"_id": 1}) is None:
                raise TemplateNotFound()
            raise _taken(name)
        try:
            result = collection.update_one(
                {"_id": object_id, "owner": owner}, {"$set": {"name": name, "body": body, "updated_at": utc_now()}}
            )
        except DuplicateKeyError:
            raise _taken(name) from None
    if result.matched_count != 1:
        raise TemplateNotFound()
    return get_template(repo, template_id, scope=scope)


def delete_template(repo: InteractionRepository, template_id: str, *, scope: Scope) -> PromptTemplate:
    found = get_template(repo, template_id, scope=scope)
    with store_errors("templates"):
        result = _collection(repo).delete_one({"_id": ObjectId(found.id), "owner": template_owner(scope)})
    if result.deleted_count != 1:
        raise TemplateNotFound()
    return found
