"""What the diffusion editors raise: below every editor module, so any of them may import it."""


class EditorModelError(RuntimeError):
    """The editor's model could not be loaded (missing, incomplete, or without safetensors weights)."""


class EditorRunError(RuntimeError):
    """The editor could not edit a group of images (out of memory, non-finite output)."""
