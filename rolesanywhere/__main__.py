"""``python -m rolesanywhere``: the ``rolesanywhere`` command."""

from rolesanywhere.cli.main import main

raise SystemExit(main())
