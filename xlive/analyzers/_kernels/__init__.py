"""Hot loops of the analyzers: numba kernels (``cache=True, nogil=True``) beside plain numpy
references that the tests compare. Kernels import numpy and numba only (no dask, xarray, bokeh)."""
