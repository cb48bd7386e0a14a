"""``python -m napari_gr2r``: the command line."""

from .cli import main

raise SystemExit(main())
