"""The live floor page: a starlette app served by uvicorn beside a runner (``--http-port``).

:mod:`.layout` places the zones, :mod:`.state` turns the core's frozen floor
picture into the page's JSON, :mod:`.auth` is the token, :mod:`.app` the
routes and :mod:`.server` the server thread; ``static/`` is the hand-written
front end (HTML, one script, one style sheet; no build step, nothing from
another host).
"""
