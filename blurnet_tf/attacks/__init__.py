"""Attacks: RP2 (white-box, transfer, low-frequency, adaptive) and PGD."""

from blurnet_tf.attacks.rp2 import RP2Result, low_frequency, rp2
