"""The one error type of the similarity commands (light: the CLI imports it on every error)."""


class SimilarityInputError(ValueError):
    """A query, seed or option that cannot be used; the message names it and the fix."""
