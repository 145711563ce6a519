"""blurnet_tf: BlurNet, Pixel Deflection and Defend++ in Keras 3 / TensorFlow 2."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("blurnet_tf")
except _metadata.PackageNotFoundError:  # a checkout on sys.path, not installed (./run.sh installs it)
    __version__ = "0.2.0"
