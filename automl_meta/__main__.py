"""``python -m automl_meta``: the ``automl-meta`` command (what ``torchrun -m automl_meta meta-train`` runs)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
