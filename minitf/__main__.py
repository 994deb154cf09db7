"""`python -m minitf` is the same as the `minitf` command."""

from minitf.cli import main

raise SystemExit(main())
