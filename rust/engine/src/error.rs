//! The engine's errors, typed by what went wrong. rust/pyext maps each kind onto one class of
//! `gpuledger.errors` in one place (`errors::to_py_err`), so no call site picks a class.
//!
//! Single bad messages or rows are not errors: they become dead letters. These are for a
//! configuration that cannot run, or an input (a batch, a file, a column) that cannot be
//! read as a whole.

use crate::sketch::SketchError;
use arrow_schema::ArrowError;
use std::fmt;

#[derive(Debug)]
pub enum EngineError {
    /// A configuration value is wrong. `key` names it (a dotted path such as
    /// `engine.window_s`, `prices."a100"` or an `Engine(...)` keyword); `problem` says
    /// what is wrong with it, for a person.
    Config { key: String, problem: String },
    /// An input as a whole cannot be read: a batch of the wrong shape, a file that is not
    /// what it claims, a column of the wrong type. The message names what was at fault.
    Input(String),
    /// Building an Arrow output batch failed.
    ArrowExport(ArrowError),
    /// A parameter of a call outside its domain (a quantile above 1, a sketch accuracy of
    /// 0): a programming error of the caller, not bad data.
    Argument(String),
}

impl EngineError {
    pub fn config(key: impl Into<String>, problem: impl Into<String>) -> Self {
        EngineError::Config {
            key: key.into(),
            problem: problem.into(),
        }
    }

    pub fn input(message: impl Into<String>) -> Self {
        EngineError::Input(message.into())
    }

    /// The same error with `context` (where it happened: a file, a row range) in front of
    /// an input error's message; other kinds are returned unchanged.
    pub fn context(self, context: impl fmt::Display) -> Self {
        match self {
            EngineError::Input(m) => EngineError::Input(format!("{context}: {m}")),
            other => other,
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Config { key, problem } => write!(f, "{key}: {problem}"),
            EngineError::Input(m) | EngineError::Argument(m) => f.write_str(m),
            EngineError::ArrowExport(e) => write!(f, "building Arrow output: {e}"),
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EngineError::ArrowExport(e) => Some(e),
            _ => None,
        }
    }
}

/// A sketch's invalid parameters are the caller's mistake; everything else (bad values,
/// bytes that are not a sketch, sketches that cannot merge) is bad input.
impl From<SketchError> for EngineError {
    fn from(e: SketchError) -> Self {
        match e {
            SketchError::InvalidParameter(m) => EngineError::Argument(m),
            other => EngineError::Input(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_read_key_then_problem() {
        let e = EngineError::config("prices.\"a: b\"", "must be >= 0");
        assert_eq!(e.to_string(), "prices.\"a: b\": must be >= 0");
        assert!(matches!(e, EngineError::Config { ref key, .. } if key == "prices.\"a: b\""));
    }

    #[test]
    fn context_prefixes_input_errors_only() {
        let e = EngineError::input("no time column").context("rows from 7");
        assert_eq!(e.to_string(), "rows from 7: no time column");
        let c = EngineError::config("k", "p").context("ignored");
        assert_eq!(c.to_string(), "k: p");
    }

    #[test]
    fn sketch_parameters_are_arguments_and_the_rest_input() {
        let p: EngineError = SketchError::InvalidParameter("alpha".into()).into();
        assert!(matches!(p, EngineError::Argument(_)));
        let d: EngineError = SketchError::Decode("short".into()).into();
        assert!(matches!(d, EngineError::Input(_)));
    }
}
