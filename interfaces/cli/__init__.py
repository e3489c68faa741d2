"""`housing-chain`: the command line."""
