"""The reproduction pipeline: resumable steps and the experiment plan."""

# The submodules (importing the package imports none of them).
__all__ = ["mnist_steps", "plan", "steps"]
