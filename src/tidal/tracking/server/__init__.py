"""The tidal server: a versioned REST API over a Store (and the dashboard, when present).

``tidal.tracking.server.app.create_app(store)`` builds the FastAPI application; ``tidal server`` and
``tidal ui`` (``tidal.cli.server``) run it with uvicorn. Clients reach it through
``tidal.tracking.httpstore.HTTPStore`` when ``TIDAL_TRACKING_URI`` is an http(s) URL.
"""
