"""The `kcnn` command line: one module per sub-command."""
