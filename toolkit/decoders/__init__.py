"""Text decoders (captioning). The registry is :data:`toolkit.registry.DECODERS`."""
