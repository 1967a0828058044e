"""Framework dialects of xentropy.

``xentropy.backends.torch``, ``.tensorflow``, ``.jax`` and ``.keras``.

Each adapter mirrors its framework's own loss names, argument order and defaults, and registers
the core's analytic backward with that framework's autodiff. Importing this package imports no
framework; importing an adapter imports its framework.
"""
