"""The interfaces: the command line, the HTTP API and the web pages. They parse input, call
the application layer and render its answers; no use-case logic lives here."""
