"""The reproduction pipeline: resumable steps, their processes, the experiment plan and the Ray executor."""

# The submodules (importing the package imports none of them).
__all__ = [
    "fair_steps",
    "longtrain_steps",
    "mnist_steps",
    "physical_steps",
    "plan",
    "ray_executor",
    "ray_nodes",
    "robustness_steps",
    "step_process",
    "steps",
    "tradeoff_steps",
]
