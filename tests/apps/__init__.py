"""Applications the tests serve: ``hello`` and echo apps (``echo``), a gate that holds
requests until the test opens it (``gate``), file responses (``files``), application
factories for ``--factory`` (``factories``), the streaming app of the memory test
(``stream``), ASGI applications and other callables refused at start next to WSGI ones of
odd shapes that are not (``notwsgi``), and unmodified Flask and Django applications for
the framework smoke tests.
Each module is importable by a server in a subprocess, as ``tests.apps.<module>:<app>``."""
