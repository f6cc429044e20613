"""Workspaces: workspace membership and email invitations."""

import sys

__version__ = "0.1.0"

# Extras that httpx and Mako import whenever the packages they need are installed (Typer's
# click, rich and pygments are), which no Workspaces process ever uses: httpx's command line
# and Mako's highlighting of template errors in HTML. Marked absent before either is imported,
# each package falls back to its plain variant, and no server worker carries them.
for _unused in ("httpx._main", "mako.ext.pygmentplugin"):
    sys.modules.setdefault(_unused, None)  # type: ignore[arg-type]  # None: "not there"
