"""``python -m dotclient``: the same as the ``dotclient`` command."""

from .cli import main

raise SystemExit(main())
