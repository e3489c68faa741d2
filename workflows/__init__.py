"""Temporal workflows: they own time and waiting, keep ids and the stage, and do no I/O."""
