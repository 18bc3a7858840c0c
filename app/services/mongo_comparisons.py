"""Reading the answers of one comparison (``comparison_id``) from MongoDB, index ``owner_comparison``."""

from __future__ import annotations

from pymongo import ASCENDING

from app.domain.interaction import Interaction, Scope
from app.services.mongo_documents import from_document
from app.services.mongo_repo import InteractionRepository, store_errors

MAX_ANSWERS = 10  # a comparison has 2–3; the bound only keeps a hostile store from costing much


def comparison_answers(repo: InteractionRepository, *, scope: Scope, comparison_id: str) -> list[Interaction]:
    """The scope's answers of that comparison in the order they were started (``[]`` if none).

    Deleted answers are left out (a deleted record keeps its id until the TTL purges it).
    """
    with store_errors("comparison read"):
        cursor = (
            repo.collection.find({"comparison_id": comparison_id, "deleted_at": None, **scope.query()})
            .sort([("_id", ASCENDING)])
            .limit(MAX_ANSWERS)
        )
        return [from_document(doc) for doc in cursor]
