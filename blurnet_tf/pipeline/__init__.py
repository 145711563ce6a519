"""The reproduction pipeline: resumable steps, their processes and the experiment plan."""

# The submodules (importing the package imports none of them).
__all__ = ["longtrain_steps", "mnist_steps", "plan", "robustness_steps", "step_process", "steps",
           "tradeoff_steps"]
