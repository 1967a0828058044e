"""The implementation of :mod:`xentropy.backends.tensorflow.namespace`, one module per theme.

Private: import the namespace, never these modules (their layout is described in the
namespace's docstring). Importing this package imports nothing else.
"""
