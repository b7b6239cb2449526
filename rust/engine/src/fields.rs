//! DCGM fields: the six built-in ones the tables use, any others that custom aggregations
//! ask for, their unit conversions, and the validity rules for their values.

use crate::error::EngineError;
use foldhash::fast::FixedState;
use std::collections::HashMap;

/// DCGM reports "blank" (no reading) as integers near 2^63; at or above this a value is missing.
pub const DCGM_BLANK_THRESHOLD: f64 = 9.2e18;

/// A field known to the engine; an index into per-field state. Built-ins come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub u16);

impl FieldId {
    /// `DCGM_FI_PROF_GR_ENGINE_ACTIVE`, ratio 0..1: the preferred utilization signal.
    pub const GR_ENGINE_ACTIVE: FieldId = FieldId(0);
    /// `DCGM_FI_DEV_GPU_UTIL`, percent 0..100: the fallback utilization signal.
    pub const GPU_UTIL: FieldId = FieldId(1);
    /// `DCGM_FI_PROF_SM_ACTIVE`, ratio 0..1.
    pub const SM_ACTIVE: FieldId = FieldId(2);
    /// `DCGM_FI_DEV_FB_USED`, MiB.
    pub const FB_USED: FieldId = FieldId(3);
    /// `DCGM_FI_DEV_POWER_USAGE`, W.
    pub const POWER_USAGE: FieldId = FieldId(4);
    /// `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`, mJ, a counter that can reset.
    pub const TOTAL_ENERGY: FieldId = FieldId(5);

    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The built-in fields, in `FieldId` order, with their default units as dcgm-exporter's
/// default counters export them.
pub const BUILTIN: [(&str, Unit); 6] = [
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", Unit::Ratio),
    ("DCGM_FI_DEV_GPU_UTIL", Unit::Percent),
    ("DCGM_FI_PROF_SM_ACTIVE", Unit::Ratio),
    ("DCGM_FI_DEV_FB_USED", Unit::MiB),
    ("DCGM_FI_DEV_POWER_USAGE", Unit::Watt),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", Unit::MilliJoule),
];

/// Units a field's raw values can arrive in; configuration can override a field's unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Ratio,
    Percent,
    MiB,
    Bytes,
    Watt,
    MilliJoule,
    Joule,
    /// Whatever the field says; no conversion and no range rule beyond finiteness.
    Raw,
}

impl Unit {
    pub fn parse(s: &str) -> Option<Unit> {
        Some(match s {
            "ratio" => Unit::Ratio,
            "percent" | "%" => Unit::Percent,
            "MiB" | "mib" => Unit::MiB,
            "bytes" | "B" => Unit::Bytes,
            "W" | "watt" => Unit::Watt,
            "mJ" | "millijoule" => Unit::MilliJoule,
            "J" | "joule" => Unit::Joule,
            "raw" => Unit::Raw,
            _ => return None,
        })
    }

    /// Factor from this unit to `to`, or `None` when they measure different things.
    fn factor_to(self, to: Unit) -> Option<f64> {
        use Unit::*;
        Some(match (self, to) {
            (a, b) if a == b => 1.0,
            (Ratio, Percent) => 100.0,
            (Percent, Ratio) => 0.01,
            (Bytes, MiB) => 1.0 / 1_048_576.0,
            (MiB, Bytes) => 1_048_576.0,
            (Joule, MilliJoule) => 1000.0,
            (MilliJoule, Joule) => 0.001,
            _ => return None,
        })
    }
}

struct FieldInfo {
    name: Box<str>,
    /// The unit values are validated and aggregated in (the default unit, docs/inputs.md 1).
    unit: Unit,
    /// Multiplier from the unit messages carry to `unit` (1 unless overridden).
    scale: f64,
    /// The valid values in `unit`, bounds included: finite, and in range for the unit.
    valid: (f64, f64),
}

/// Fields the engine aggregates: the built-ins plus those registered for custom aggregations.
pub struct FieldRegistry {
    fields: Vec<FieldInfo>,
    by_name: HashMap<Box<str>, FieldId, FixedState>,
}

impl Default for FieldRegistry {
    fn default() -> Self {
        let mut r = FieldRegistry {
            fields: Vec::new(),
            by_name: HashMap::default(),
        };
        for (name, unit) in BUILTIN {
            r.add(name, unit);
        }
        r
    }
}

impl FieldRegistry {
    fn add(&mut self, name: &str, unit: Unit) -> FieldId {
        let id = FieldId(self.fields.len() as u16);
        let valid = match unit {
            Unit::Ratio => (0.0, 1.0),
            Unit::Percent => (0.0, 100.0),
            Unit::Raw => (f64::MIN, f64::MAX),
            _ => (0.0, f64::MAX),
        };
        self.fields.push(FieldInfo {
            name: name.into(),
            unit,
            scale: 1.0,
            valid,
        });
        self.by_name.insert(name.into(), id);
        id
    }

    /// Registers a field a custom aggregation needs (idempotent). Its values are kept as sent.
    pub fn register(&mut self, name: &str) -> FieldId {
        match self.by_name.get(name) {
            Some(&id) => id,
            None => self.add(name, Unit::Raw),
        }
    }

    /// Declares that messages carry `field` in `unit` (newer dcgm-exporter releases changed
    /// some units); values are converted to the field's default unit on decode.
    pub fn set_source_unit(&mut self, name: &str, unit: Unit) -> Result<(), EngineError> {
        let key = || format!("units.{name}");
        let id = *self
            .by_name
            .get(name)
            .ok_or_else(|| EngineError::config(key(), "not a field gpuledger aggregates"))?;
        let info = &mut self.fields[id.index()];
        info.scale = unit.factor_to(info.unit).ok_or_else(|| {
            EngineError::config(key(), format!("cannot convert {unit:?} to {:?}", info.unit))
        })?;
        Ok(())
    }

    /// The field a DCGM metric name denotes, if the engine aggregates it.
    #[inline]
    pub fn lookup(&self, name: &str) -> Option<FieldId> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, id: FieldId) -> &str {
        &self.fields[id.index()].name
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Multiplier from the unit messages carry (DCGM-named sources) to the default unit.
    #[inline]
    pub fn source_scale(&self, id: FieldId) -> f64 {
        self.fields[id.index()].scale
    }

    /// Checks a value in the field's default unit; `Err` carries the dead-letter reason.
    /// Inlined into the decoders' loops: one range comparison (NaN and infinities fail it).
    #[inline(always)]
    pub fn validate(&self, id: FieldId, v: f64) -> Result<(), String> {
        let (lo, hi) = self.fields[id.index()].valid;
        if v >= lo && v <= hi {
            Ok(())
        } else {
            Err(self.invalid_reason(id, v))
        }
    }

    #[cold]
    #[inline(never)]
    fn invalid_reason(&self, id: FieldId, v: f64) -> String {
        let info = &self.fields[id.index()];
        if !v.is_finite() {
            return format!("{}: non-finite value {v}", info.name);
        }
        let max = match info.unit {
            Unit::Ratio => 1.0,
            Unit::Percent => 100.0,
            _ => f64::INFINITY,
        };
        format!("{}: value {v} outside the valid range 0..{max}", info.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_have_fixed_ids() {
        let r = FieldRegistry::default();
        assert_eq!(
            r.lookup("DCGM_FI_PROF_GR_ENGINE_ACTIVE"),
            Some(FieldId::GR_ENGINE_ACTIVE)
        );
        assert_eq!(r.lookup("DCGM_FI_DEV_GPU_UTIL"), Some(FieldId::GPU_UTIL));
        assert_eq!(
            r.lookup("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"),
            Some(FieldId::TOTAL_ENERGY)
        );
        assert_eq!(r.lookup("DCGM_FI_DEV_MEMORY_TEMP"), None);
    }

    #[test]
    fn registered_fields_are_raw_and_idempotent() {
        let mut r = FieldRegistry::default();
        let t = r.register("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE");
        assert_eq!(t, FieldId(6));
        assert_eq!(r.register("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"), t);
        assert!(r.validate(t, 123.0).is_ok());
        assert!(r.validate(t, f64::NAN).is_err());
    }

    #[test]
    fn unit_overrides_convert_to_default_units() {
        let mut r = FieldRegistry::default();
        r.set_source_unit("DCGM_FI_DEV_GPU_UTIL", Unit::Ratio)
            .unwrap();
        assert_eq!(r.source_scale(FieldId::GPU_UTIL), 100.0);
        r.set_source_unit("DCGM_FI_DEV_FB_USED", Unit::Bytes)
            .unwrap();
        assert_eq!(r.source_scale(FieldId::FB_USED) * 1_048_576.0, 1.0);
        r.set_source_unit("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", Unit::Joule)
            .unwrap();
        assert_eq!(r.source_scale(FieldId::TOTAL_ENERGY), 1000.0);
        assert!(r
            .set_source_unit("DCGM_FI_DEV_POWER_USAGE", Unit::Bytes)
            .is_err());
        assert!(matches!(
            r.set_source_unit("NOPE", Unit::Watt),
            Err(EngineError::Config { key, .. }) if key == "units.NOPE"
        ));
    }

    #[test]
    fn utilization_above_full_is_invalid() {
        let r = FieldRegistry::default();
        assert!(r.validate(FieldId::GPU_UTIL, 100.0).is_ok());
        assert!(r.validate(FieldId::GPU_UTIL, 100.5).is_err());
        assert!(r.validate(FieldId::GR_ENGINE_ACTIVE, 1.01).is_err());
        assert!(r.validate(FieldId::GR_ENGINE_ACTIVE, -0.1).is_err());
        assert!(r.validate(FieldId::POWER_USAGE, f64::NAN).is_err());
        assert!(r.validate(FieldId::POWER_USAGE, f64::INFINITY).is_err());
        assert!(r.validate(FieldId::POWER_USAGE, 700.0).is_ok());
    }

    #[test]
    fn range_check_edges_and_reasons() {
        let mut r = FieldRegistry::default();
        let raw = r.register("MY_COUNTER");
        let ok = |r: &FieldRegistry, f, v| r.validate(f, v).is_ok();
        // -0.0 is zero; bounds are included; the largest finite value is finite.
        assert!(ok(&r, FieldId::GR_ENGINE_ACTIVE, -0.0));
        assert!(ok(&r, FieldId::GR_ENGINE_ACTIVE, 1.0));
        assert!(ok(&r, FieldId::POWER_USAGE, f64::MAX));
        assert!(!ok(&r, FieldId::POWER_USAGE, f64::NEG_INFINITY));
        assert!(!ok(&r, FieldId::POWER_USAGE, -f64::MIN_POSITIVE));
        // Raw fields: any finite value, negative ones too.
        assert!(ok(&r, raw, -5.0));
        assert!(ok(&r, raw, f64::MIN));
        assert!(!ok(&r, raw, f64::INFINITY));
        assert!(!ok(&r, raw, f64::NAN));
        assert_eq!(
            r.validate(FieldId::GPU_UTIL, 100.5).unwrap_err(),
            "DCGM_FI_DEV_GPU_UTIL: value 100.5 outside the valid range 0..100"
        );
        assert_eq!(
            r.validate(FieldId::POWER_USAGE, -1.0).unwrap_err(),
            "DCGM_FI_DEV_POWER_USAGE: value -1 outside the valid range 0..inf"
        );
        assert_eq!(
            r.validate(raw, f64::NAN).unwrap_err(),
            "MY_COUNTER: non-finite value NaN"
        );
    }
}
