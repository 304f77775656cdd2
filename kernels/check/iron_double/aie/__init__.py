"""Double of mlir-aie's ``aie`` package: only what IRON designs import (see ../README.md)."""
DOUBLE = True
