"""Network code shared by the importers, the exporters and the TSA client.

* :mod:`toolkit.net.url`: ``imap[s]://`` / ``pop3[s]://`` URLs;
* :mod:`toolkit.net.tls`: TLS contexts (``--ca-file``, ``--insecure``) and the
  certificate and plaintext refusals;
* :mod:`toolkit.net.retry`: which failures are link failures, bounded backoff,
  reconnect-and-repeat;
* :mod:`toolkit.net.imap`, :mod:`toolkit.net.pop3`: connect, STARTTLS/STLS with
  the certificate check, login.

Nothing here changes a module global: line limits and debug levels are set
per connection.
"""
