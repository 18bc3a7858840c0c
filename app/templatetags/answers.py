"""``{{ text|answer_html }}``: the one way an answer is shown, on every page that shows one."""

from __future__ import annotations

from django import template
from django.utils.html import escape, linebreaks
from django.utils.safestring import SafeString

register = template.Library()


@register.filter(name="answer_html")
def answer_html(text: object) -> SafeString:
    """Plain, escaped paragraphs for now; the markdown renderer replaces this body."""
    return SafeString(linebreaks(escape(str(text or ""))))
