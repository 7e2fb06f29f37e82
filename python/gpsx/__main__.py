"""``python -m gpsx``: the same command line as ``gpsx``."""
from .cli import main

raise SystemExit(main())
