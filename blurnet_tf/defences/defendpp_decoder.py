"""Defend++'s decoders (Liu et al. §3.3): the Laplacian pyramid of eq. 2 and Fig. 3's plain
hourglass, built on the classifier's tapped feature maps (see `defendpp` for the taps)."""

import functools

from keras import layers

DECODERS = ("pyramid", "hourglass")


def decode(decoder, skips, bottleneck, sizes, channels, norm):
    """[Ĩ^0, ..., Ĩ^{M-1}], finest first; `norm`: batch-normalise the hidden layers (the encoder is)."""
    return (_pyramid if decoder == "pyramid" else _hourglass)(skips, bottleneck, sizes, channels, norm)


def _hidden(x, filters, name, norm, transpose=False):
    """A decoder layer with ReLU: 3x3 conv (or stride-2 transposed conv), batch-normalised before
    the ReLU when the encoder is (the decoding blocks mirror the encoding ones, §3.3; unnormalised,
    ResNet-18's decoder reached NaN after 7 SGD steps at the paper's rate 0.01)."""
    conv = functools.partial(layers.Conv2DTranspose, strides=2) if transpose else layers.Conv2D
    if not norm:
        return conv(filters, 3, padding="same", activation="relu", name=name)(x)
    x = conv(filters, 3, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _coarsest(x, size, name, norm):
    """D_{M-1}: stride-2 transposed convs at the bottleneck's width up to size (cropped if over)."""
    filters = x.shape[-1]
    i = 0
    while x.shape[1] < size:
        x = _hidden(x, filters, f"{name}_deconv{i}", norm, transpose=True)
        i += 1
    if x.shape[1] > size:
        extra = x.shape[1] - size
        x = layers.Cropping2D(((0, extra), (0, extra)), name=f"{name}_crop")(x)
    return x


def _to_size(feature, size, name):
    """Nearest upsampling by an integer factor when the tapped map is coarser than its scale."""
    if feature.shape[1] == size:
        return feature
    if size % feature.shape[1]:
        raise ValueError(f"{name}: a {feature.shape[1]}x{feature.shape[1]} map cannot feed scale {size}")
    return layers.UpSampling2D(size // feature.shape[1], name=f"{name}_upsample")(feature)


def _pyramid(skips, bottleneck, sizes, channels, norm):
    """Eq. 2: Ĩ^m = U(Ĩ^{m+1}) + H(E_m), coarsest first; returns outputs finest first."""
    m_last = len(sizes) - 1
    x = _coarsest(bottleneck, sizes[-1], f"decoder_d{m_last}", norm)
    out = layers.Conv2D(channels, 3, padding="same", name=f"decoder_d{m_last}_out")(x)
    outputs = [out]
    for m in range(m_last - 1, -1, -1):
        feature = _to_size(skips[m], sizes[m], f"decoder_h{m}")
        width = skips[m].shape[-1]
        u = _hidden(out, width, f"decoder_u{m}_conv", norm)
        u = layers.Conv2DTranspose(channels, 3, strides=2, padding="same", name=f"decoder_u{m}_deconv")(u)
        h = _hidden(feature, width, f"decoder_h{m}_conv1", norm)
        h = layers.Conv2D(channels, 3, padding="same", name=f"decoder_h{m}_conv2")(h)
        h = layers.Add(name=f"decoder_h{m}")([layers.Conv2D(channels, 1, name=f"decoder_h{m}_skip")(feature), h])
        out = layers.Add(name=f"decoder_out{m}")([u, h])
        outputs.insert(0, out)
    return outputs


def _hourglass(skips, bottleneck, sizes, channels, norm):
    """Fig. 3's plain hourglass (the ablation): the bottleneck only, mirrored conv + stride-2
    deconv blocks, and a 1x1 head per scale so the multi-scale objective still applies."""
    m_last = len(sizes) - 1
    x = _coarsest(bottleneck, sizes[-1], f"decoder_d{m_last}", norm)
    outputs = [layers.Conv2D(channels, 1, name=f"decoder_out{m_last}")(x)]
    for m in range(m_last - 1, -1, -1):
        width = skips[m].shape[-1]
        x = _hidden(x, width, f"decoder_u{m}_conv", norm)
        x = _hidden(x, width, f"decoder_u{m}_deconv", norm, transpose=True)
        outputs.insert(0, layers.Conv2D(channels, 1, name=f"decoder_out{m}")(x))
    return outputs
