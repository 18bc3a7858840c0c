"""Input parsing for pages and APIs: every value from a request is checked here before a service sees it."""
