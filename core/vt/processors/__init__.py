"""Frame processors that ship with the core (registered by ``vt.builtins.processors``)."""
