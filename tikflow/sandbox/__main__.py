"""`python -m tikflow.sandbox`: serve the sandbox (see `tikflow.sandbox.server.main`)."""

from tikflow.sandbox.server import main

raise SystemExit(main())
