"""attnlab: the neural attention family and the models built on it, readable, tested and fast."""

from attnlab.errors import AttnlabError

__version__ = "0.1.0"
__all__ = ["AttnlabError", "__version__"]
