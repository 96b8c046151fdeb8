"""One module per subcommand (see pyruntime/cli.py for the contract)."""
