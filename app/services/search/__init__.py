"""Search over the interaction history: query language, ranking, typo tolerance, semantic vectors, facets.

The stored tokens and their matching are the domain's (``app.domain.search``); ``service.history_search``
is the entry point the history page and the JSON API call.
"""
