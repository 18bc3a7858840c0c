"""The OpenAI wire format as pure functions: errors (``errors``), requests (``requests``), replies (``responses``).

Nothing in this package touches Django, the store or a model: ``app/views/openai_api.py`` (the ``/v1``
views) parses a
decoded body with ``parse_chat_request``/``parse_completion_request`` into our own types (``ChatTurn``,
``GenerationParams``), hands them to ``app.services.generation``, and builds the replies with the
``*_body``/``*_chunk`` functions. Every refusal is an ``OpenAIError`` carrying its HTTP status and the
``{"error": {"message", "type", "param", "code"}}`` body OpenAI clients turn into their exception classes.

Mapping of OpenAI's sampling settings to ours: ``temperature`` 0 (or ``top_p`` 0) is greedy decoding;
otherwise the answer is sampled with that temperature (OpenAI's default is 1) and ``top_p``, without
top-k. ``max_tokens``/``max_completion_tokens`` become ``max_new_tokens`` (default 64, capped at the
server's maximum; ``finish_reason: "length"`` tells the client). ``seed`` only matters when sampling.
"""
