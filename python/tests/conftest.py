import importlib.util
import os
import sys

# The tests import the package's sources (python/pullman) and the fake next to them; the
# sources are what is being tested. The native module is built, not a source: it comes from
# the installed package (`pip install ./python`), found before the sources shadow it.
_installed = importlib.util.find_spec("pullman")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

import pullman  # noqa: E402  (the sources)

if _installed is not None and _installed.submodule_search_locations:
    pullman.__path__.extend(p for p in _installed.submodule_search_locations if p not in pullman.__path__)
