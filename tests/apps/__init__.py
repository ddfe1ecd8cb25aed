"""Applications the tests serve: ``hello`` and echo apps (``echo``), a gate that holds
requests until the test opens it (``gate``), file responses (``files``), application
factories for ``--factory`` (``factories``), the streaming app of the memory test
(``stream``), and unmodified Flask and Django applications for the framework smoke tests.
Each module is importable by a server in a subprocess, as ``tests.apps.<module>:<app>``."""
