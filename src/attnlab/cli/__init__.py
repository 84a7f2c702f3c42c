"""The ``attnlab`` command line: each subcommand is a thin call into the library."""
