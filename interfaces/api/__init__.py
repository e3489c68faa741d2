"""The HTTP API (FastAPI): `housing-chain up` serves it, `housing-chain serve` runs it alone."""
