"""The HTTP API and web page of vt-cogvideo (``vt cogvideo serve``).

``vt_cogvideo.server.app.create_app(settings, generator_factory=...)`` builds the FastAPI app;
``vt_cogvideo.server.command`` holds the command. Nothing heavy is imported here.
"""
