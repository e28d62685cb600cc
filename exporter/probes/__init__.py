"""Network probes. `endpoint.probe_endpoint` checks one mail server endpoint (SMTP,
submission, SMTPS, IMAP(S), POP3(S)); `mailproto` and `tlsconn` are its building blocks,
reusable by anything that needs a mail connection brought up to the start of TLS."""
