"""``python -m rolesanywhere``: the ``rolesanywhere`` command."""

from rolesanywhere.cli import main

raise SystemExit(main())
