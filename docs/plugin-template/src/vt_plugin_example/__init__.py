"""An example vt plugin (copy this folder to start your own)."""
