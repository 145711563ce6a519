"""blurnet_tf: BlurNet, Pixel Deflection and Defend++ in Keras 3 / TensorFlow 2."""

__version__ = "0.1.0"
