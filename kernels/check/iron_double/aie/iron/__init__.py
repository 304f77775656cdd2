"""``aie.iron`` double (mlir-aie v1.1.x ``python/iron/__init__.py`` names)."""
from ._model import GlobalBuffer, Kernel, ObjectFifo, Program, Runtime, Worker, WorkerRuntimeBarrier  # noqa: F401
