"""vt-cogvideo: CogVideoX image-to-video generation for vt (``vt cogvideo …``).

The generation API is :mod:`vt_cogvideo.generation` (``Generator``, ``GenerationRequest``,
``GenerationResult``); nothing heavy (torch, diffusers) is imported until it is used.
"""

__version__ = "0.1.0"
