"""`python -m tikflow.emulator`: serve the sandbox (see `tikflow.emulator.server.main`)."""

from tikflow.emulator.server import main

raise SystemExit(main())
