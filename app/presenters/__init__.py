"""Presentation without business logic: server-rendered SVG charts and the stats page's view-model."""
