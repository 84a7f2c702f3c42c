"""Small C kernels compiled on the user's machine at first use (see :mod:`.build`)."""
