//! The DCGM fields the engine aggregates, and the validity rules for their values.

/// DCGM reports "blank" (no reading) as integers near 2^63; at or above this a value is missing.
pub const DCGM_BLANK_THRESHOLD: f64 = 9.2e18;

/// A DCGM field gpuledger understands. The discriminant indexes per-field state arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `DCGM_FI_PROF_GR_ENGINE_ACTIVE`, ratio 0..1: the preferred utilization signal.
    GrEngineActive = 0,
    /// `DCGM_FI_DEV_GPU_UTIL`, percent 0..100: the fallback utilization signal.
    GpuUtil = 1,
    /// `DCGM_FI_PROF_SM_ACTIVE`, ratio 0..1.
    SmActive = 2,
    /// `DCGM_FI_DEV_FB_USED`, MiB.
    FbUsed = 3,
    /// `DCGM_FI_DEV_POWER_USAGE`, W.
    PowerUsage = 4,
    /// `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`, mJ, a counter that can reset.
    TotalEnergy = 5,
}

pub const N_FIELDS: usize = 6;

impl Field {
    pub const ALL: [Field; N_FIELDS] = [
        Field::GrEngineActive,
        Field::GpuUtil,
        Field::SmActive,
        Field::FbUsed,
        Field::PowerUsage,
        Field::TotalEnergy,
    ];

    pub fn from_dcgm_name(name: &str) -> Option<Field> {
        Some(match name {
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE" => Field::GrEngineActive,
            "DCGM_FI_DEV_GPU_UTIL" => Field::GpuUtil,
            "DCGM_FI_PROF_SM_ACTIVE" => Field::SmActive,
            "DCGM_FI_DEV_FB_USED" => Field::FbUsed,
            "DCGM_FI_DEV_POWER_USAGE" => Field::PowerUsage,
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" => Field::TotalEnergy,
            _ => return None,
        })
    }

    pub fn dcgm_name(self) -> &'static str {
        match self {
            Field::GrEngineActive => "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            Field::GpuUtil => "DCGM_FI_DEV_GPU_UTIL",
            Field::SmActive => "DCGM_FI_PROF_SM_ACTIVE",
            Field::FbUsed => "DCGM_FI_DEV_FB_USED",
            Field::PowerUsage => "DCGM_FI_DEV_POWER_USAGE",
            Field::TotalEnergy => "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        }
    }

    /// Checks a (non-blank) value; `Err` carries the dead-letter reason.
    pub fn validate(self, v: f64) -> Result<(), String> {
        if !v.is_finite() {
            return Err(format!("{}: non-finite value {v}", self.dcgm_name()));
        }
        let max = match self {
            Field::GrEngineActive | Field::SmActive => 1.0,
            Field::GpuUtil => 100.0,
            _ => f64::INFINITY,
        };
        if v < 0.0 || v > max {
            return Err(format!(
                "{}: value {v} outside the valid range 0..{max}",
                self.dcgm_name()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Field::ALL {
            assert_eq!(Field::from_dcgm_name(f.dcgm_name()), Some(f));
        }
        assert_eq!(Field::from_dcgm_name("DCGM_FI_DEV_MEMORY_TEMP"), None);
    }

    #[test]
    fn utilization_above_full_is_invalid() {
        assert!(Field::GpuUtil.validate(100.0).is_ok());
        assert!(Field::GpuUtil.validate(100.5).is_err());
        assert!(Field::GrEngineActive.validate(1.01).is_err());
        assert!(Field::GrEngineActive.validate(-0.1).is_err());
        assert!(Field::PowerUsage.validate(f64::NAN).is_err());
        assert!(Field::PowerUsage.validate(f64::INFINITY).is_err());
        assert!(Field::PowerUsage.validate(700.0).is_ok());
    }
}
