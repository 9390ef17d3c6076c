"""Exceptions raised by the core; the algorithms translate them into
``QgsProcessingException`` without changing the message."""


class UserInputError(ValueError):
    """Input the user can fix: the message says what is wrong and how to fix it."""


class EmptyOutputError(UserInputError):
    """An output would hold no valid cell; nothing was written. Batch steps may skip the item."""


class Cancelled(RuntimeError):
    """The user cancelled; partial outputs have been removed."""


def check_canceled(is_canceled) -> None:
    """Raise :class:`Cancelled` when the optional callback reports a cancel."""
    if is_canceled is not None and is_canceled():
        raise Cancelled("Cancelled by the user")
