"""Used only when the real ``ml_dtypes`` is not installed (it is appended to ``sys.path``
after site-packages): a 2-byte stand-in type for ``bfloat16`` so designs can declare bf16
buffers. Sizes are exact; the name is not (it is numpy's uint16 type)."""
import numpy as np

bfloat16 = np.uint16
