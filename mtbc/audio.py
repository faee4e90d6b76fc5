"""Public alias of :mod:`mtbc.data.audio` (``mtbc.audio.load_audio``, ``AudioError``, ...).

The module object is the same, so ``import mtbc.audio`` and ``import mtbc.data.audio`` give
one module (patching one patches the other).
"""

import sys

from mtbc.data import audio as _audio

sys.modules[__name__] = _audio
