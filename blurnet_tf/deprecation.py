"""Old keyword names kept working for one release, with a DeprecationWarning naming the new one."""

import functools
import warnings

REMOVED_IN = "0.4.0"


def renamed_keywords(**old_to_new):
    """A decorator: a call with `old=` is passed on as `new=` (and warns); both at once is a TypeError."""

    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__name__}() got both {old}= (deprecated) and {new}=")
                    warnings.warn(
                        f"{fn.__name__}({old}=...) is deprecated and goes in {REMOVED_IN}; use {new}=",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        call.renamed_keywords = dict(old_to_new)
        return call

    return wrap


def no_longer_needed(name, why):
    """Method `name`, kept for one release though it does nothing any more: warns (saying `why`), returns []."""

    def method(self):
        warnings.warn(
            f"{type(self).__name__}.{name}() is deprecated and goes in {REMOVED_IN}: {why}",
            DeprecationWarning,
            stacklevel=2,
        )
        return []

    method.__name__ = name
    return method
