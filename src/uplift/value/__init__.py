"""Value stage: what one incremental conversion is worth in each segment."""

from uplift.value.per_conversion import (
    ConstantValue,
    ObservedValue,
    SegmentValue,
    build_value_model,
)

__all__ = ["ConstantValue", "ObservedValue", "SegmentValue", "build_value_model"]
