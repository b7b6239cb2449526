"""`gpuledger.combine`, the import path documented before the package had rooms: importing it
gives `gpuledger.output.combine` itself (the same module object), loaded only when asked for,
so `import gpuledger` does not load combine."""

import sys

from gpuledger.output import combine as _combine

sys.modules[__name__] = _combine
