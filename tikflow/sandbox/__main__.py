"""`python -m tikflow.sandbox`."""

from tikflow.sandbox.server import main

raise SystemExit(main())
