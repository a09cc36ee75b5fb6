import os
import sys

# The tests import the package's sources (python/pullman) and the fake next to them; an
# installed pullman would do as well, but the sources are what is being tested.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
