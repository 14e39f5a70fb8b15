"""The media engine: sources, probing, decoding, processing and encoding of video."""
