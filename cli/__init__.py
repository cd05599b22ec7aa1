"""The `promedical` command line: one module per subcommand, `main.py` the entry point."""
