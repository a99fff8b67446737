"""Why publishing stopped."""


class PublishError(RuntimeError):
    """Publishing stopped; the message says at which step and what the repository holds now."""


class PublishRefused(PublishError, ValueError):
    """Publishing refused before anything was written: the data holds something that is not safe to share as it is."""
