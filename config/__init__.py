"""Configuration (pydantic-settings) and logging, shared by every layer above the domain."""
