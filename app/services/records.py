"""The one way an interaction is written: through the durable local outbox, then MongoDB."""

from __future__ import annotations

import logging

from app.domain.interaction import STATUS_PENDING, Interaction
from app.errors import StoreUnavailable
from app.services.metrics import observe_interaction
from app.services.mongo_generation import discard_pending, write_record
from app.services.mongo_repo import get_repository
from app.services.outbox import OutboxError, get_outbox, get_worker

logger = logging.getLogger(__name__)


def store_interaction(interaction: Interaction) -> None:
    """The one way an interaction is written: every caller (form, API, stream) goes through here.

    The interaction is first committed to the durable local outbox (fsync'd), then written to
    MongoDB. When MongoDB is unreachable, or older interactions are still waiting, it stays in the
    outbox for the replay worker and this returns normally: the visitor still gets the answer.
    Only when the outbox itself cannot be written *and* MongoDB fails is ``StoreUnavailable`` raised.

    A generation writes twice: ``pending`` before the engine starts (write-ahead), then its final
    record with the same id, which replaces the pending one (``mongo_generation.write_record``).
    """
    if interaction.status != STATUS_PENDING:
        observe_interaction(interaction)
    outbox = get_outbox()
    try:
        seq = outbox.add(interaction)
    except OutboxError:
        logger.error("Outbox unavailable; writing interaction %s straight to MongoDB", interaction.id)
        write_record(get_repository(), interaction)
        return
    try:
        if outbox.has_pending_before(seq):  # keep the order: queue behind the older ones
            get_worker().wake()
            return
        write_record(get_repository(), interaction)
    except StoreUnavailable:
        logger.warning("MongoDB unreachable: interaction %s kept in the outbox for replay", interaction.id)
        get_worker().wake()
        return
    except OutboxError:
        get_worker().wake()
        return
    try:
        outbox.remove(interaction.id)
    except OutboxError:
        logger.warning(
            "Interaction %s is stored but still listed in the outbox (a replay finds it stored)", interaction.id
        )


def replay_leftovers() -> None:
    """At process start: interactions an earlier run left in the outbox are written once the store answers."""
    try:
        waiting = get_outbox().depth()
    except OutboxError:
        logger.exception("The outbox cannot be read at start-up")
        return
    if waiting:
        logger.info("%d interaction(s) from an earlier run wait in the outbox; replaying", waiting)
        get_worker().wake()


def withdraw_pending(interaction: Interaction) -> None:
    """Forget a write-ahead record whose request never started (refused by a full queue): no record.

    Best effort: a pending record that cannot be deleted now is reaped as ``interrupted`` later.
    """
    try:
        get_outbox().remove(interaction.id)
    except OutboxError:
        logger.warning("Refused interaction %s could not be dropped from the outbox", interaction.id)
    try:
        discard_pending(get_repository(), interaction.id)
    except StoreUnavailable:
        logger.warning("Refused interaction %s stays pending until the reaper marks it", interaction.id)
