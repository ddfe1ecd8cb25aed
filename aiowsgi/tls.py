"""The server's TLS context, built from the ``ssl_*`` options.

Its own module because two owners need it: :class:`~aiowsgi.server.Server` wraps its
listening sockets in it, and the command line builds it once before importing the
application, so that a certificate that cannot be loaded is reported at once, naming the
option, instead of after a slow import.
"""

from __future__ import annotations

import ssl

from .config import Config, ConfigError


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context, or None for plain HTTP; a bad file is a ConfigError."""
    if not config.ssl_certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.set_alpn_protocols(["http/1.1"])

    def no_password() -> str:  # rather than OpenSSL's prompt on the terminal
        raise ConfigError("ssl_keyfile_password", "the private key in "
                          f"{config.ssl_keyfile or config.ssl_certfile!r} is encrypted: "
                          "give its password")

    try:
        context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile or None,
                                config.ssl_keyfile_password or no_password)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("ssl_certfile", f"cannot load {config.ssl_certfile!r}"
                          f"{' with ' + repr(config.ssl_keyfile) if config.ssl_keyfile else ''}"
                          f": {exc}") from None
    if config.ssl_ca_certs:
        try:
            context.load_verify_locations(config.ssl_ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("ssl_ca_certs", f"cannot load {config.ssl_ca_certs!r}: "
                              f"{exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context
