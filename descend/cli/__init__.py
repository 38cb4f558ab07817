"""The ``descend`` command line (``descend ...`` or ``python -m descend ...``).

Every public module of this package except :mod:`descend.cli.main` is one
subcommand: it defines ``register(subparsers)``, which adds its parser with
``subparsers.add_parser(...)`` and sets ``run`` (``run(args) -> int``) with
``parser.set_defaults(run=run)``. :func:`descend.cli.main.main` discovers the
modules, so adding a command is adding a file. Helpers shared by commands live
in private modules (``_common``). Commands stay thin: the experiments live in
the library (:mod:`descend.lab`), the CLI parses arguments and prints.
"""
