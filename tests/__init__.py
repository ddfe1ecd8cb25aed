"""aiowsgi's tests, laid out like the package.

Where the test of a behaviour lives:

- ``test_<module>.py``: what ``aiowsgi/<module>.py`` does, checked over real sockets where
  the behaviour is on the wire.  For a connection: ``test_connection`` (keep-alive,
  pipelining, a client that leaves), ``test_states`` (the state table, transition by
  transition), ``test_reading`` (heads, their edges, 100-continue), ``test_rarepaths``
  (chunked and large bodies, refusals), ``test_body`` (memory or a temporary file),
  ``test_admission`` (503 and 504), ``test_output`` (one write per batch), ``test_flow``
  (backpressure), ``test_sendfile`` (file responses), ``test_deadlines`` (every timeout);
  then ``test_wsgi`` (the PEP 3333 contract), ``test_http11``, ``test_chunked``,
  ``test_handoff``, ``test_pool``, ``test_server``, ``test_runner`` (run(), logging's
  configuration, systemd's sockets), ``test_sockets``, ``test_tls``, ``test_supervisor``
  (--reload and --workers), ``test_cli`` (the command line), ``test_environment`` (the
  ``AIOWSGI_*`` variables) and the rest, one per module.
- ``system/``: qualities of the whole server rather than of one module: clients that
  reset by the thousand (``test_faults``), idle connections by the thousand
  (``test_scale``), what a request costs the garbage collector (``test_gc_budget``), the
  peers' published request-smuggling advisories replayed against it (``test_advisories``).
- ``frameworks/``: real frameworks, unmodified, served by aiowsgi.
- ``project/``: the repository itself: the README's option table, ruff and mypy, the
  sizes of modules and the architecture document (``test_layout``), the import graph
  (``test_imports``), the examples.

Helpers, each defined once: ``waiting`` (``SAFETY``, the one safety timeout, and polling),
``http`` (a raw HTTP client and request helpers), ``process`` (``aiowsgi serve`` in a
subprocess, ``ServeProcess``, and the command line run to its end, ``run_aiowsgi``),
``apps`` (``hello``, echo apps, a gate, file apps, factories, ``notwsgi``: ASGI
applications and other callables refused at start, and odd WSGI shapes that are not),
``logs`` (what the server
logged), ``limits`` (the default limits, from Config), ``fake_transport`` (a connection
driven without sockets or threads), ``conftest`` (``start_server``: a live server on each
event loop; ``served``: what the command line would serve).
"""
