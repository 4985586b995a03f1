"""The U-Net: the seed article's network by default (depth 4, 32-64-128-256 filters, 512 bottleneck)."""

import keras
from keras import layers


def conv_block(x, filters: int, batchnorm: bool, name: str, batchnorm_layer=layers.BatchNormalization):
    """Two 3x3 same-padded convolutions, each followed by (BatchNorm and) ReLU."""
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batchnorm, name=f"{name}_conv{i}")(x)
        if batchnorm:
            x = batchnorm_layer(name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def upsample(x, filters: int, mode: str, name: str):
    if mode == "transpose":
        return layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"{name}_up")(x)
    x = bilinear_doubling(x, f"{name}_resize")
    return layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_up")(x)


def bilinear_doubling(x, name: str):
    """Twice the height and width by bilinear interpolation, as `UpSampling2D(2, interpolation="bilinear")`
    computes it (half-pixel centres, edge pixels repeated), from built-in layers that take any size.

    Keras's bilinear layer fails once `predict` has seen two image sizes: the function it then traces
    has no fixed height and width, and its resize compares that symbolic size with 0. Here each axis
    is repeated (nearest), then smoothed by (1/4, 1/2, 1/4) = 3/4 of a mean over 3 + 1/4 of the
    centre; a mean that leaves out the pixels past the edge repeats the edge pixel, as bilinear does.
    Built-in layers keep the saved model loadable by Keras alone."""
    x = layers.UpSampling2D(2, name=f"{name}_repeat")(x)
    for axis, window in (("rows", (3, 1)), ("cols", (1, 3))):
        mean = layers.AveragePooling2D(window, strides=1, padding="same", name=f"{name}_{axis}_mean")(x)
        x = layers.Add(name=f"{name}_{axis}")([layers.Rescaling(0.75, name=f"{name}_{axis}_mean_part")(mean),
                                               layers.Rescaling(0.25, name=f"{name}_{axis}_centre_part")(x)])
    return x


def build_unet(channels: int = 1, num_classes: int = 1, depth: int = 4, base_filters: int = 32,
               batchnorm: bool = False, dropout: float = 0.0, upsampling: str = "transpose",
               batchnorm_layer=layers.BatchNormalization) -> keras.Model:
    """Input (None, None, channels): any height and width divisible by 2**depth.

    Output (H, W, num_classes): sigmoid for one class, softmax for several. Dropout, when set,
    follows the deepest encoder block and the bottleneck, as in the U-Net paper. `batchnorm_layer`:
    the class of the normalisation layers (a subclass of Keras's that trains faster, for example).
    """
    inputs = keras.Input((None, None, channels), name="image")
    x, skips = inputs, []
    for level in range(depth):
        x = conv_block(x, base_filters * 2**level, batchnorm, f"enc{level}", batchnorm_layer)
        if dropout and level == depth - 1:
            x = layers.Dropout(dropout, name=f"enc{level}_dropout")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
    x = conv_block(x, base_filters * 2**depth, batchnorm, "bottleneck", batchnorm_layer)
    if dropout:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = upsample(x, filters, upsampling, f"dec{level}")
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skips[level]])
        x = conv_block(x, filters, batchnorm, f"dec{level}", batchnorm_layer)
    activation = "sigmoid" if num_classes == 1 else "softmax"
    outputs = layers.Conv2D(num_classes, 1, activation=activation, dtype="float32", name="head")(x)
    return keras.Model(inputs, outputs, name="unet")
