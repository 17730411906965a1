__version__ = "0.1.0"
"Local geometry of neural-network losses along training trajectories."
# The one hand-written module: it re-exports the public API of the exported modules.
from .oracle import *
from .operator import *
