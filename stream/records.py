"""The event contract moved to :mod:`contract` (no Faust import); this name stays for old imports."""
from contract import *  # noqa: F401,F403
from contract import __all__  # noqa: F401
