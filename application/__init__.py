"""The application layer: every use case, called by every interface (CLI, HTTP API, web pages)
and by the activities. Interfaces parse, call and render; what a use case means lives here."""
