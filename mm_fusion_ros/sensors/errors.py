"""The one error type the sensor decoders raise for a message they cannot use.

`image_to_rgb`, the PointCloud2 readers, the radar preset converters and `forward_speed`
raise `SensorDecodeError` (through a per-module subclass: `ImageDecodeError`,
`PointCloudDecodeError`, `RadarConversionError`, `OdometryError`) for any content a message
can carry, and nothing else: callers catch this one type, drop the message, and count it by
`reason`, a short machine-readable key from `REASONS`. A `RadarPresetError` from loading a
preset *file* is a configuration error, not a decode error.
"""

# reason key -> what it means (the vocabulary of `SensorDecodeError.reason`).
REASONS: dict[str, str] = {
    'bad_message': 'a field has a type or value its message type cannot hold',
    'bad_encoding': 'unsupported image encoding or compressed format',
    'bad_size': 'zero, negative or inconsistent declared size (height, width, step)',
    'size_mismatch': 'the data length does not match the declared layout',
    'empty': 'no data',
    'too_large': 'the declared size is over the decoder limit (decompression bomb)',
    'corrupt_compressed': 'compressed image bytes that do not decode',
    'bad_layout': 'point fields overlap, repeat, have unknown types or lie past point_step',
    'missing_field': 'the cloud lacks a field the radar preset reads',
    'non_finite': 'NaN or infinite value',
    'out_of_range': 'a finite value outside the plausible range',
}


class SensorDecodeError(ValueError):
    """A sensor message whose content cannot be decoded; `reason` is a key of `REASONS`."""

    def __init__(self, message: str, reason: str = 'bad_message') -> None:
        super().__init__(message)
        self.reason = reason if reason in REASONS else 'bad_message'

    def __reduce__(self) -> tuple:  # keeps `reason` across pickling (Ray, multiprocessing)
        return type(self), (str(self), self.reason)


def reason_of(exc: BaseException) -> str:
    """The reason key of a decode error ('bad_message' for any other exception)."""
    return getattr(exc, 'reason', 'bad_message')
