"""The deep TLS scan of one mail endpoint: versions, cipher suites, groups, key exchange, grade.

Modules:
  connection  one probe connection: connect, STARTTLS dialogue, send a hello, read the server's flight
  scanner     the enumeration strategy (which hellos to send, and what their answers mean)
  tls13       the TLS 1.3 suite and group enumeration, as a pure state machine
  grade       the grade of a whole scan from its findings, pure
  results     the typed, immutable scan result
  report      the scan result as a text table or JSON, for the command line

The hellos and the parsing come from exporter.tlswire; nothing here builds bytes itself.
"""
