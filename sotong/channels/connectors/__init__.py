"""One module per platform, each a Connector (see base.py); `registry` finds them by name."""
