"""The one error type attnlab raises for bad input.

It subclasses ``ValueError`` so ``except ValueError`` keeps working; the command line
prints its message as one line and exits non-zero.
"""


class AttnlabError(ValueError):
    """Bad input: the message names the argument and what was expected."""
