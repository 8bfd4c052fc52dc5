"""`python -m telentir_box` runs the CLI (also the zipapp's entry point)."""

from telentir_box.cli import main

raise SystemExit(main())
