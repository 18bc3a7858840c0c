"""``{{ turns|turns_of:interaction }}``: how many turns the conversation of a history row has (1 if unknown)."""

from __future__ import annotations

from collections.abc import Mapping

from django import template

from app.domain.interaction import Interaction

register = template.Library()


@register.filter(name="turns_of")
def turns_of(counts: object, interaction: Interaction) -> int:
    if not isinstance(counts, Mapping) or not isinstance(interaction, Interaction):
        return 1
    return int(counts.get(interaction.thread_id, 1))
