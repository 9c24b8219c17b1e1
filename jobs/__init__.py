"""One module per `nerve` subcommand."""
