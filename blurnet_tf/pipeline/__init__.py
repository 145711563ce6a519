"""The reproduction pipeline: resumable steps and the experiment plan."""
