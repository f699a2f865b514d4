"""One module per ``apicmap`` command, each with ``register(subparsers, parents)`` and its handler."""
