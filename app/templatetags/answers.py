"""``{{ text|answer_html }}``: the one way an answer is shown, on every page that shows one."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from app.presenters.markdown import render_markdown

register = template.Library()


@register.filter(name="answer_html")
def answer_html(text: object) -> SafeString:
    """The answer's markdown as sanitised HTML (see ``app.presenters.markdown``)."""
    return SafeString(render_markdown(str(text or "")))
