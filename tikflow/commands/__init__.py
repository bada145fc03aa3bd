"""`tikflow` subcommands: each module adds its parser with `add_parser(subparsers)`."""
