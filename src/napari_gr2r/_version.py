"""The package version, in a module of its own so that any module can import it without
importing the package's top level (which offers :func:`napari_gr2r.denoise_image`)."""

__version__ = "0.1.0"
