"""Multi-host training on Dask."""
