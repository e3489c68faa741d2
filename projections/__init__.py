"""Read models: the case facts the reports need, projected from the event store exactly once."""
