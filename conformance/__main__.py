"""``python -m xentropy.conformance``: see :mod:`xentropy.conformance.cli`."""

from ._entry import main

if __name__ == "__main__":  # not when a spawned worker re-imports the main module
    raise SystemExit(main())
