//! Unit conversion of raw DCGM-named values on decode, leaving DCGM blank sentinels intact.

use crate::fields::{FieldId, FieldRegistry, DCGM_BLANK_THRESHOLD};

/// Converts a value as a DCGM-named source sent it to the field's default unit
/// (`FieldRegistry::source_scale`). A blank sentinel (>= 9.2e18) is passed on unscaled, so a
/// unit override that shrinks values (bytes to MiB, percent to ratio) cannot turn "no
/// reading" into a huge but plausible measurement; the engine then skips it as blank.
#[inline]
pub fn to_default_unit(fields: &FieldRegistry, field: FieldId, raw: f64) -> f64 {
    if raw >= DCGM_BLANK_THRESHOLD {
        raw
    } else {
        raw * fields.source_scale(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::Unit;

    #[test]
    fn scales_values_but_not_blanks() {
        let mut f = FieldRegistry::default();
        f.set_source_unit("DCGM_FI_DEV_FB_USED", Unit::Bytes)
            .unwrap();
        assert_eq!(to_default_unit(&f, FieldId::FB_USED, 1_048_576.0), 1.0);
        let blank = 9_223_372_036_854_775_794.0;
        assert_eq!(to_default_unit(&f, FieldId::FB_USED, blank), blank);
        assert!(to_default_unit(&f, FieldId::FB_USED, f64::NAN).is_nan());
        assert_eq!(to_default_unit(&f, FieldId::GPU_UTIL, 87.0), 87.0);
    }
}
