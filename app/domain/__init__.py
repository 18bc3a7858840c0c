"""The app's own vocabulary: records, owners, filters, generation parameters, results and stream events.

Pure dataclasses and functions. Nothing here imports Django, PyMongo or torch, so every other layer
(services, views, management commands, benchmarks) can depend on it and it depends on nothing but
``app.errors``.
"""
