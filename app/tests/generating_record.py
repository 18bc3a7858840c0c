"""Another process generating an answer, as the store sees it: a ``pending`` record written with PyMongo.

The record contract of a generation in progress: ``status`` "pending" with ``output`` the text so far,
``heartbeat_at`` and ``checkpoint`` (+1 per write), ``worker``; it ends with a terminal status.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from app.domain.interaction import Interaction, Scope
from app.services.mongo_documents import to_document
from app.services.mongo_repo import get_repository


class GeneratingRecord:
    """A pending record in the app's store that a test grows and ends, checkpoint by checkpoint."""

    def __init__(self, scope: Scope, prompt: str = "Followed from afar", output: str = "") -> None:
        interaction = Interaction(
            prompt=prompt, output=output, model="m", task="text-generation", status="pending", **scope.owner_fields()
        )
        document: dict[str, Any] = to_document(interaction)
        document.update(heartbeat_at=datetime.now(UTC), checkpoint=0, worker="other-host:4242", stop_requested_at=None)
        get_repository().collection.insert_one(document)
        self.id = interaction.id
        self.output = output
        self.checkpoint = 0

    def write(self, more: str) -> None:
        self.output += more
        self.checkpoint += 1
        self._set(output=self.output, checkpoint=self.checkpoint, heartbeat_at=datetime.now(UTC))

    def end(self, status: str = "ok") -> None:
        self._set(status=status, output_tokens=len(self.output.split()), finish_reason="length")

    def _set(self, **fields: Any) -> None:
        get_repository().collection.update_one({"_id": ObjectId(self.id)}, {"$set": fields})
