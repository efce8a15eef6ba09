"""Datasets: the registry (sources), downloads, safe archive reading, per-format readers,
preprocessing and HDF5 packing, one module each. Import from the modules: this package imports
nothing, so a stage loads (and depends on) only the parts it uses."""
