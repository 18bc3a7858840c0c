"""Typed function views grouped by concern; each parses input (a form), calls one service, renders.

``_htmx`` renders a fragment for htmx and the full page otherwise, and turns a ``DomainError`` into
its one problem partial; JSON views raise and ``app.middleware`` answers in JSON. Nothing imports
this package except the URL configuration.
"""
