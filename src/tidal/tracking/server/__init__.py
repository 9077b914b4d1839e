"""The tracking server: a versioned REST API over a Store, and the dashboard's pages.

Named apart from :mod:`tidal.serve` on purpose: that package serves *models* (scale-to-zero
services); this one serves *tracking* (runs, metrics, artifacts, jobs) for a team.
``tidal.tracking.server.app.create_app(store)`` builds the FastAPI application from its pieces
(``auth``, ``limits``, ``models``, ``api``, ``jobs``, ``dashboard``, ``responses``); ``tidal
server`` and ``tidal ui`` (``tidal.cli.server``) run it with uvicorn. Clients reach it through
``tidal.tracking.httpstore.HTTPStore`` when ``TIDAL_TRACKING_URI`` is an http(s) URL.
"""
