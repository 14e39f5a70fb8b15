"""Built-in decoder backends: PyAV (default), torchcodec and decord (optional), images."""
