"""The housing-chain engine: settings, the application service, the CLI and the stack."""
