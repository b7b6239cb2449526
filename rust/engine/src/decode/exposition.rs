//! dcgm-exporter's Prometheus text exposition, one scrape after another (docs/inputs.md 1c).
//!
//! `DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-...",Hostname="l40s-1",...} 87 [TIMESTAMP_MS]`
//!
//! Every sample line is one message, numbered from 1 like the lines of the text (comments and
//! blank lines count), and announced to a [`LineSink`] with `begin_line` / `end_line`, so a
//! line that ends in `Err` can be dead-lettered with its line number and its readings
//! discarded. Rules (docs/decoders.md):
//! - `# HELP`, `# TYPE` and other comments are ignored. `# scrape_ts <time>` (Unix seconds,
//!   float allowed, or integer milliseconds above 1e11, or RFC 3339) gives the time of the
//!   following lines that carry no timestamp of their own, until the next `# scrape_ts`. A
//!   malformed one is an `Err` line and clears the scrape time, so the lines after it are not
//!   silently stamped with the previous scrape's time.
//! - A sample's time: its own timestamp (integer ms), else the scrape time, else the caller's
//!   default (e.g. from the file name), else the line is an `Err` ("no timestamp: ...").
//! - Metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`, labels `name="value"` with the escapes `\\`,
//!   `\"`, `\n`; any other backslash stays as written (`\z` is a backslash and `z`, as in
//!   Prometheus), a trailing comma allowed, a repeated label: last wins.
//! - Values: floats, `NaN`, `+Inf`, `-Inf`, integers such as 9223372036854775794 (the engine
//!   judges values); multiplied by the field's unit override.
//! - `\n` or `\r\n` line ends; a line that is not UTF-8 is an `Err`, the others are unaffected.
//! - Checks in order: syntax, then unknown metric (`unknown_field`, `Ok`), then time, then a
//!   non-empty `UUID` label.

use super::units::to_default_unit;
use super::{DecodeContext, Reading, ReadingSink};
use crate::series::{GpuLabels, MAX_EXTRA_LABELS};
use crate::time::{parse_rfc3339_ms, unix_number_to_ms, EpochMs};
use std::borrow::Cow;

/// Dead-letter reason of a sample line with no time from anywhere.
pub const NO_TIMESTAMP: &str = "no timestamp: add '# scrape_ts <unix seconds>' before the scrape, \
     give the samples timestamps, or pass a default time (e.g. from the file name)";

/// A [`ReadingSink`] that also hears where each line (message) begins and ends.
pub trait LineSink: ReadingSink {
    /// A line starts; the readings and unknown fields until `end_line` belong to it.
    fn begin_line(&mut self, line_no: u64);
    /// The line is done. `Err(reason)`: a dead letter, whose readings must be discarded.
    /// `raw_line` is the line as in the text, without its line end.
    fn end_line(&mut self, line_no: u64, result: Result<(), String>, raw_line: &[u8]);
}

/// Decoding state carried from line to line, and from one chunk of text to the next.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    default_ts_ms: Option<EpochMs>,
    scrape_ts_ms: Option<EpochMs>,
    lines: u64,
}

impl Exposition {
    /// `default_ts_ms` stamps samples that have no timestamp and no `# scrape_ts` before them.
    pub fn new(default_ts_ms: Option<EpochMs>) -> Exposition {
        Exposition {
            default_ts_ms,
            scrape_ts_ms: None,
            lines: 0,
        }
    }

    /// Lines read so far (the number of the last one).
    pub fn lines_read(&self) -> u64 {
        self.lines
    }

    /// The time of the current scrape, from the last `# scrape_ts`.
    pub fn scrape_ts_ms(&self) -> Option<EpochMs> {
        self.scrape_ts_ms
    }

    /// Decodes the complete lines of `text` (those ended by `\n`) and returns how many bytes
    /// they took; the rest, an unfinished line, belongs in front of the next chunk (or to
    /// [`Exposition::finish`]).
    pub fn feed(
        &mut self,
        text: &[u8],
        ctx: &DecodeContext<'_>,
        sink: &mut impl LineSink,
    ) -> usize {
        let mut start = 0;
        while let Some(n) = text[start..].iter().position(|&c| c == b'\n') {
            self.line(&text[start..start + n], ctx, sink);
            start += n + 1;
        }
        start
    }

    /// Decodes all of `text`; its last line need not end with `\n`.
    pub fn finish(&mut self, text: &[u8], ctx: &DecodeContext<'_>, sink: &mut impl LineSink) {
        let used = self.feed(text, ctx, sink);
        if used < text.len() {
            self.line(&text[used..], ctx, sink);
        }
    }

    fn line(&mut self, raw: &[u8], ctx: &DecodeContext<'_>, sink: &mut impl LineSink) {
        self.lines += 1;
        let line_no = self.lines;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let start = line
            .iter()
            .position(|&c| !is_blank(c))
            .unwrap_or(line.len());
        match line.get(start) {
            None => {}
            Some(b'#') => {
                if let Some(arg) = scrape_ts_arg(&line[start + 1..]) {
                    match parse_scrape_ts(arg) {
                        Ok(ts) => self.scrape_ts_ms = Some(ts),
                        Err(reason) => {
                            self.scrape_ts_ms = None;
                            sink.begin_line(line_no);
                            sink.end_line(line_no, Err(reason), line);
                        }
                    }
                }
            }
            Some(_) => {
                sink.begin_line(line_no);
                let result = decode_line(line, ctx, self.scrape_ts_ms.or(self.default_ts_ms), sink);
                sink.end_line(line_no, result, line);
            }
        }
    }
}

/// Decodes a whole text (see [`Exposition`]).
pub fn decode_lines(
    text: &[u8],
    ctx: &DecodeContext<'_>,
    default_ts_ms: Option<EpochMs>,
    sink: &mut impl LineSink,
) {
    Exposition::new(default_ts_ms).finish(text, ctx, sink);
}

#[inline]
fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// The argument of a `# scrape_ts <time>` comment (`comment` follows the `#`).
fn scrape_ts_arg(comment: &[u8]) -> Option<&[u8]> {
    let c = &comment[comment
        .iter()
        .position(|&c| !is_blank(c))
        .unwrap_or(comment.len())..];
    let rest = c.strip_prefix(b"scrape_ts")?;
    match rest.first() {
        None => Some(rest),
        Some(&c) if is_blank(c) => Some(rest),
        Some(_) => None,
    }
}

fn parse_scrape_ts(arg: &[u8]) -> Result<EpochMs, String> {
    let text =
        std::str::from_utf8(arg).map_err(|_| "'# scrape_ts' with invalid UTF-8".to_string())?;
    let t = text.trim_matches([' ', '\t']);
    t.parse::<f64>()
        .ok()
        .and_then(unix_number_to_ms)
        .or_else(|| parse_rfc3339_ms(t))
        .ok_or_else(|| format!("'# scrape_ts {t}': expected Unix seconds or RFC 3339"))
}

/// Labels a reading keeps, as last seen on the line.
#[derive(Default)]
struct Labels<'a> {
    uuid: Cow<'a, str>,
    gpu_instance_id: Cow<'a, str>,
    gpu_index: Cow<'a, str>,
    hostname_old: Cow<'a, str>,
    hostname_new: Cow<'a, str>,
    model_name: Cow<'a, str>,
    namespace: Cow<'a, str>,
    pod: Cow<'a, str>,
    container: Cow<'a, str>,
    extra: [Cow<'a, str>; MAX_EXTRA_LABELS],
}

/// Cursor over one line (valid UTF-8); errors name 1-based byte columns.
struct Line<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Line<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.i += 1;
        }
    }

    fn err(&self, what: &str) -> String {
        match self.peek() {
            None => format!("{what} at column {} (end of line)", self.i + 1),
            Some(_) => format!("{what} at column {}", self.i + 1),
        }
    }

    /// A name: first byte by `first`, the rest by `rest`.
    fn name(&mut self, first: fn(u8) -> bool, rest: fn(u8) -> bool) -> Option<&'a str> {
        let start = self.i;
        if !self.peek().is_some_and(first) {
            return None;
        }
        self.i += 1;
        while self.peek().is_some_and(rest) {
            self.i += 1;
        }
        Some(&self.s[start..self.i])
    }

    /// A run of non-blank bytes (a value or timestamp).
    fn word(&mut self) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(|c| !is_blank(c)) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    /// A label value after its opening quote, up to and past the closing quote.
    fn label_value(&mut self) -> Result<Cow<'a, str>, String> {
        let start = self.i;
        let b = self.s.as_bytes();
        let mut owned: Option<String> = None;
        let mut run = start;
        loop {
            match b.get(self.i) {
                None => return Err(self.err("unterminated label value")),
                Some(b'"') => break,
                Some(b'\\') => {
                    let c = match b.get(self.i + 1) {
                        Some(b'\\') => '\\',
                        Some(b'"') => '"',
                        Some(b'n') => '\n',
                        None => {
                            self.i += 1;
                            return Err(self.err("unterminated label value"));
                        }
                        // Any other escape stays as written, backslash and character, as
                        // Prometheus's text parser keeps it (its lexer accepts `\\.`, its
                        // unescaping replaces only these three).
                        Some(_) => {
                            self.i += 1;
                            continue;
                        }
                    };
                    let o = owned.get_or_insert_with(String::new);
                    o.push_str(&self.s[run..self.i]);
                    o.push(c);
                    self.i += 2;
                    run = self.i;
                }
                Some(_) => self.i += 1,
            }
        }
        let end = self.i;
        self.i += 1;
        Ok(match owned {
            None => Cow::Borrowed(&self.s[start..end]),
            Some(mut o) => {
                o.push_str(&self.s[run..end]);
                Cow::Owned(o)
            }
        })
    }

    /// The label set after `{`, up to and past `}`.
    fn labels(&mut self, ctx: &DecodeContext<'_>, l: &mut Labels<'a>) -> Result<(), String> {
        loop {
            self.skip_blanks();
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(());
            }
            let name = self
                .name(
                    |c| c.is_ascii_alphabetic() || c == b'_',
                    |c| c.is_ascii_alphanumeric() || c == b'_',
                )
                .ok_or_else(|| self.err("expected a label name or '}'"))?;
            self.skip_blanks();
            if self.peek() != Some(b'=') {
                return Err(self.err("expected '='"));
            }
            self.i += 1;
            self.skip_blanks();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected '\"'"));
            }
            self.i += 1;
            let value = self.label_value()?;
            if !ctx.extra_labels.is_empty() {
                if let Some(k) = ctx.extra_slot(name).filter(|&k| k < MAX_EXTRA_LABELS) {
                    l.extra[k] = value.clone();
                }
            }
            match name {
                "UUID" => l.uuid = value,
                "GPU_I_ID" => l.gpu_instance_id = value,
                "gpu" => l.gpu_index = value,
                "Hostname" => l.hostname_old = value,
                "hostname" => l.hostname_new = value,
                "modelName" => l.model_name = value,
                "namespace" => l.namespace = value,
                "pod" => l.pod = value,
                "container" => l.container = value,
                _ => {}
            }
            self.skip_blanks();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }
}

/// Decodes one sample line (not a comment; without its line end). `ts_ms` stamps it when
/// it has no timestamp of its own. `Err` is the dead-letter reason for the line.
pub fn decode_line(
    line: &[u8],
    ctx: &DecodeContext<'_>,
    ts_ms: Option<EpochMs>,
    sink: &mut impl ReadingSink,
) -> Result<(), String> {
    let s = std::str::from_utf8(line)
        .map_err(|e| format!("invalid UTF-8 at column {}", e.valid_up_to() + 1))?;
    let mut p = Line { s, i: 0 };
    p.skip_blanks();
    let name = p
        .name(
            |c| c.is_ascii_alphabetic() || c == b'_' || c == b':',
            |c| c.is_ascii_alphanumeric() || c == b'_' || c == b':',
        )
        .ok_or_else(|| p.err("expected a metric name"))?;
    let mut l = Labels::default();
    if p.peek() == Some(b'{') {
        p.i += 1;
        p.labels(ctx, &mut l)?;
    }
    if !p.peek().is_some_and(is_blank) {
        return Err(p.err(if p.peek().is_none() {
            "missing value"
        } else {
            "expected a space before the value"
        }));
    }
    p.skip_blanks();
    let value_text = p.word();
    if value_text.is_empty() {
        return Err(p.err("missing value"));
    }
    // Prometheus spells the special values NaN, +Inf, -Inf; Rust's parser takes those.
    let raw_value: f64 = value_text
        .parse()
        .map_err(|_| format!("value {value_text:?} is not a number"))?;
    p.skip_blanks();
    let own_ts = match p.word() {
        "" => None,
        t => Some(
            t.parse::<i64>()
                .map_err(|_| format!("timestamp {t:?} is not integer milliseconds"))?,
        ),
    };
    p.skip_blanks();
    if p.peek().is_some() {
        return Err(p.err("unexpected text after the sample"));
    }

    let Some(field) = ctx.fields.lookup(name) else {
        sink.unknown_field();
        return Ok(());
    };
    let ts_ms = own_ts.or(ts_ms).ok_or(NO_TIMESTAMP)?;
    if l.uuid.is_empty() {
        return Err("missing UUID label".to_string());
    }
    let mut extra = [""; MAX_EXTRA_LABELS];
    for (e, v) in extra.iter_mut().zip(&l.extra) {
        *e = v;
    }
    sink.reading(Reading {
        ts_ms,
        field,
        value: to_default_unit(ctx.fields, field, raw_value),
        labels: GpuLabels {
            uuid: &l.uuid,
            gpu_instance_id: &l.gpu_instance_id,
            gpu_index: &l.gpu_index,
            hostname: if l.hostname_new.is_empty() {
                &l.hostname_old
            } else {
                &l.hostname_new
            },
            model_name: &l.model_name,
            namespace: &l.namespace,
            pod: &l.pod,
            container: &l.container,
            extra,
        },
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::test_support::{Collect, Got, Rng};
    use crate::fields::{FieldId, FieldRegistry, Unit};

    const SPEC_EXAMPLE: &str = r#"DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-585834da-79ca-0599-5140-4ffdb131ae93",pci_bus_id="00000000:4E:00.0",device="nvidia0",modelName="NVIDIA L40S",Hostname="l40s-1",container="tensorflow",namespace="research",pod="tensorflow-0"} 87"#;

    /// What a line ended as: its readings (kept only when Ok), unknown fields, the result.
    #[derive(Debug)]
    struct Line {
        no: u64,
        got: Vec<Got>,
        unknown: usize,
        result: Result<(), String>,
        raw: String,
    }

    /// Buffers per line like the engine does.
    #[derive(Default)]
    struct Lines {
        open: Option<(u64, Collect)>,
        lines: Vec<Line>,
    }

    impl ReadingSink for Lines {
        fn reading(&mut self, r: Reading<'_>) {
            self.open
                .as_mut()
                .expect("reading outside a line")
                .1
                .reading(r);
        }
        fn unknown_field(&mut self) {
            self.open
                .as_mut()
                .expect("unknown field outside a line")
                .1
                .unknown_field();
        }
    }

    impl LineSink for Lines {
        fn begin_line(&mut self, line_no: u64) {
            assert!(self.open.is_none(), "line {line_no} begins inside another");
            self.open = Some((line_no, Collect::default()));
        }
        fn end_line(&mut self, line_no: u64, result: Result<(), String>, raw_line: &[u8]) {
            let (no, c) = self.open.take().expect("end without begin");
            assert_eq!(no, line_no);
            self.lines.push(Line {
                no,
                got: c.got,
                unknown: c.unknown,
                result,
                raw: String::from_utf8_lossy(raw_line).into_owned(),
            });
        }
    }

    fn run_with(
        text: &str,
        fields: &FieldRegistry,
        extra: &[&str],
        default_ts: Option<EpochMs>,
    ) -> Vec<Line> {
        let extra: Vec<Box<str>> = extra.iter().map(|&e| e.into()).collect();
        let ctx = DecodeContext {
            fields,
            extra_labels: &extra,
        };
        let mut sink = Lines::default();
        decode_lines(text.as_bytes(), &ctx, default_ts, &mut sink);
        assert!(sink.open.is_none());
        sink.lines
    }

    fn run(text: &str) -> Vec<Line> {
        run_with(text, &FieldRegistry::default(), &[], None)
    }

    /// The single reading of a single good line.
    fn one(text: &str) -> Got {
        let lines = run(text);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].result, Ok(()));
        assert_eq!(lines[0].got.len(), 1);
        lines[0].got[0].clone()
    }

    #[test]
    fn decodes_the_spec_example_with_a_scrape_ts() {
        let text = format!("# scrape_ts 1764331201.5\n{SPEC_EXAMPLE}\n");
        let lines = run(&text);
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].no, &lines[0].raw), (2, &SPEC_EXAMPLE.to_string()));
        let g = &lines[0].got[0];
        assert_eq!(
            (g.ts_ms, g.field, g.value),
            (1_764_331_201_500, FieldId::GPU_UTIL, 87.0)
        );
        assert_eq!(
            g.labels,
            [
                "GPU-585834da-79ca-0599-5140-4ffdb131ae93",
                "",
                "0",
                "l40s-1",
                "NVIDIA L40S",
                "research",
                "tensorflow-0",
                "tensorflow"
            ]
        );
    }

    #[test]
    fn a_scrape_as_dcgm_exporter_serves_it() {
        let text = "\
# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).\r
# TYPE DCGM_FI_DEV_SM_CLOCK gauge\r
DCGM_FI_DEV_SM_CLOCK{gpu=\"0\",UUID=\"GPU-a\",Hostname=\"h\"} 1980\r
\r
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).\r
# TYPE DCGM_FI_DEV_POWER_USAGE gauge\r
DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",UUID=\"GPU-a\",Hostname=\"h\"} 512.5 1764331201000\r
DCGM_FI_DEV_POWER_USAGE{gpu=\"1\",UUID=\"GPU-b\",Hostname=\"h\"} 300.25\r
   \t\r
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu=\"1\",UUID=\"GPU-b\",Hostname=\"h\"} 0.5";
        let lines = run_with(
            text,
            &FieldRegistry::default(),
            &[],
            Some(1_764_331_260_000),
        );
        let summary: Vec<_> = lines
            .iter()
            .map(|l| (l.no, l.got.len(), l.unknown, l.result.is_ok()))
            .collect();
        assert_eq!(
            summary,
            [
                (3, 0, 1, true),
                (7, 1, 0, true),
                (8, 1, 0, true),
                (10, 1, 0, true)
            ]
        );
        assert_eq!(
            lines[1].got[0].ts_ms, 1_764_331_201_000,
            "own timestamp wins"
        );
        assert_eq!(lines[2].got[0].ts_ms, 1_764_331_260_000, "else the default");
        assert_eq!(
            (lines[3].got[0].field, lines[3].got[0].value),
            (FieldId::GR_ENGINE_ACTIVE, 0.5)
        );
        assert!(!lines[1].raw.ends_with('\r'));
    }

    #[test]
    fn time_precedence_and_scrape_ts_forms() {
        let line = r#"DCGM_FI_DEV_GPU_UTIL{UUID="G"} 1"#;
        let text = format!(
            "{line}\n# scrape_ts 1764331201\n{line}\n{line} 1764331299000\n#scrape_ts\t1764331202500\n{line}\n# scrape_ts 2026-11-28T12:00:01Z\n{line}\n# scrape_ts soon\n{line}\n"
        );
        let lines = run(&text);
        let got: Vec<_> = lines
            .iter()
            .map(|l| (l.no, l.got.first().map(|g| g.ts_ms), l.result.clone().err()))
            .collect();
        assert_eq!(
            got,
            [
                (1, None, Some(NO_TIMESTAMP.to_string())),
                (3, Some(1_764_331_201_000), None),
                (4, Some(1_764_331_299_000), None),
                (6, Some(1_764_331_202_500), None),
                (8, Some(1_795_867_201_000), None),
                (
                    9,
                    None,
                    Some("'# scrape_ts soon': expected Unix seconds or RFC 3339".to_string())
                ),
                (10, None, Some(NO_TIMESTAMP.to_string())),
            ]
        );
        assert!(NO_TIMESTAMP
            .starts_with("no timestamp: add '# scrape_ts <unix seconds>' before the scrape"));
        // Other comments that merely start alike are comments.
        assert!(run(&format!(
            "# scrape_tsx 5\n# scrape_ts_old 5\n# HELP scrape_ts 1\n{line}\n"
        ))[0]
            .result
            .is_err());
    }

    #[test]
    fn values_special_and_blank() {
        for (v, want) in [
            ("NaN", f64::NAN),
            ("+Inf", f64::INFINITY),
            ("-Inf", f64::NEG_INFINITY),
            ("9223372036854775794", 9_223_372_036_854_775_794.0),
            ("1.5e3", 1500.0),
            ("-0.25", -0.25),
        ] {
            let g = one(&format!(
                r#"DCGM_FI_DEV_FB_USED{{UUID="G"}} {v} 1764331201000"#
            ));
            assert!(
                g.value == want || (g.value.is_nan() && want.is_nan()),
                "{v}"
            );
        }
    }

    #[test]
    fn labels_escapes_hostnames_mig_extras_and_overrides() {
        let g = one(
            r#"DCGM_FI_DEV_GPU_UTIL{ UUID = "GPU-1" , pod="a\"b\\c\nd", hostname="new", Hostname="old", GPU_I_ID="3", GPU_I_PROFILE="1g.10gb", } 5 1764331201000"#,
        );
        assert_eq!(g.labels[0], "GPU-1");
        assert_eq!(g.labels[1], "3");
        assert_eq!(g.labels[3], "new");
        assert_eq!(g.labels[6], "a\"b\\c\nd");
        let g = one(r#"DCGM_FI_DEV_GPU_UTIL{UUID="G",Hostname="old",hostname=""} 5 1764331201000"#);
        assert_eq!(g.labels[3], "old");
        let g = one(
            r#"DCGM_FI_DEV_GPU_UTIL{UUID="../../etc",UUID="G2",pod="../../etc/passwd"} 5 1764331201000"#,
        );
        assert_eq!(
            (g.labels[0].as_str(), g.labels[6].as_str()),
            ("G2", "../../etc/passwd")
        );

        let mut f = FieldRegistry::default();
        f.set_source_unit("DCGM_FI_DEV_FB_USED", Unit::Bytes)
            .unwrap();
        let text =
            r#"DCGM_FI_DEV_FB_USED{UUID="G",rack="r\"7",device="nvidia0"} 2097152 1764331201000"#;
        let lines = run_with(text, &f, &["device", "rack", "missing"], None);
        let g = &lines[0].got[0];
        assert_eq!(g.value, 2.0);
        assert_eq!(g.extra[..3], ["nvidia0", "r\"7", ""]);
    }

    /// Prometheus's text parser keeps an unknown escape as written: its lexer takes `\\.` in
    /// a label value, and it unescapes only `\\`, `\"` and `\n`, left to right.
    #[test]
    fn unknown_escapes_stay_as_written_like_prometheus() {
        for (written, value) in [
            (r#"b\\a\z"#, r#"b\a\z"#),
            (r#"\t"#, r#"\t"#),
            (r#"\\n"#, r#"\n"#),
            (r#"\\\""#, r#"\""#),
            (r#"a\é\"b"#, r#"a\é"b"#),
            (r#"x\ "#, r#"x\ "#),
        ] {
            let g = one(&format!(
                r#"DCGM_FI_DEV_GPU_UTIL{{UUID="G",pod="{written}"}} 5 1764331201000"#
            ));
            assert_eq!(g.labels[6], value, "{written}");
        }
    }

    #[test]
    fn metric_without_braces_and_unknown_metrics() {
        let mut f = FieldRegistry::default();
        f.register("DCGM_FI_CUSTOM");
        let lines = run_with("DCGM_FI_CUSTOM 5 1764331201000\nfoo:bar_total 1\nDCGM_FI_DEV_GPU_UTIL{} 3 1764331201000\n", &f, &[], None);
        let r: Vec<_> = lines
            .iter()
            .map(|l| (l.got.len(), l.unknown, l.result.clone()))
            .collect();
        assert_eq!(
            r,
            [
                (0, 0, Err("missing UUID label".to_string())),
                (0, 1, Ok(())),
                (0, 0, Err("missing UUID label".to_string()))
            ]
        );
    }

    #[test]
    fn bad_lines_are_errors_and_other_lines_survive() {
        let good = r#"DCGM_FI_DEV_GPU_UTIL{UUID="G"} 1 1764331201000"#;
        let bad: &[(&[u8], &str)] = &[
            (
                b"DCGM_FI_DEV_GPU_UTIL{UUID=\"G\xff\"} 1",
                "invalid UTF-8 at column 29",
            ),
            (b"{UUID=\"G\"} 1", "expected a metric name at column 1"),
            (b"9metric 1", "expected a metric name at column 1"),
            (
                b"DCGM_FI_DEV_GPU_UTIL{UUID=\"G\"}",
                "missing value at column 31 (end of line)",
            ),
            (
                b"DCGM_FI_DEV_GPU_UTIL{UUID=\"G\"}1",
                "expected a space before the value at column 31",
            ),
            (
                b"DCGM_FI_DEV_GPU_UTIL",
                "missing value at column 21 (end of line)",
            ),
            (
                b"DCGM_FI_DEV_GPU_UTIL{UUID=\"G\"} abc",
                "value \"abc\" is not a number",
            ),
            (
                b"DCGM_FI_DEV_GPU_UTIL{UUID=\"G\"} 1 12.5",
                "timestamp \"12.5\" is not integer milliseconds",
            ),
            (
                b"DCGM_FI_DEV_GPU_UTIL{UUID=\"G\"} 1 12 13",
                "unexpected text after the sample at column 37",
            ),
            (
                b"DCGM_FI_DEV_GPU_UTIL{UUID=\"G} 1",
                "unterminated label value at column 32 (end of line)",
            ),
            (
                b"DCGM_FI_DEV_GPU_UTIL{UUID=\"G\\",
                "unterminated label value at column 30 (end of line)",
            ),
            (
                b"DCGM_FI_DEV_GPU_UTIL{UUID=G} 1",
                "expected '\"' at column 27",
            ),
            (
                b"DCGM_FI_DEV_GPU_UTIL{UUID\"G\"} 1",
                "expected '=' at column 26",
            ),
            (
                b"DCGM_FI_DEV_GPU_UTIL{UUID=\"G\" pod=\"p\"} 1",
                "expected ',' or '}' at column 31",
            ),
            (
                b"DCGM_FI_DEV_GPU_UTIL{,} 1",
                "expected a label name or '}' at column 22",
            ),
            (
                b"DCGM_FI_DEV_GPU_UTIL{UUID=\"G\"",
                "expected ',' or '}' at column 30 (end of line)",
            ),
        ];
        for &(line, want) in bad {
            let mut text = format!("{good}\n").into_bytes();
            text.extend_from_slice(line);
            text.extend_from_slice(format!("\r\n{good}").as_bytes());
            let fields = FieldRegistry::default();
            let ctx = DecodeContext {
                fields: &fields,
                extra_labels: &[],
            };
            let mut sink = Lines::default();
            decode_lines(&text, &ctx, None, &mut sink);
            let l = &sink.lines;
            assert_eq!(l.len(), 3, "{}", String::from_utf8_lossy(line));
            assert!(l[0].result.is_ok() && l[2].result.is_ok() && l[2].got.len() == 1);
            let e = l[1].result.clone().unwrap_err();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
            assert_eq!(
                (l[1].no, l[1].raw.as_bytes()),
                (2, String::from_utf8_lossy(line).as_bytes())
            );
        }
    }

    #[test]
    fn chunked_feeding_matches_whole_text() {
        let text = format!("# scrape_ts 1764331201\n{SPEC_EXAMPLE}\n# HELP x y\n{SPEC_EXAMPLE} 1764331205000\r\nbad line\n{SPEC_EXAMPLE}");
        let fields = FieldRegistry::default();
        let ctx = DecodeContext {
            fields: &fields,
            extra_labels: &[],
        };
        let summary = |lines: &[Line]| -> Vec<String> {
            lines
                .iter()
                .map(|l| format!("{} {:?} {:?}", l.no, l.got, l.result))
                .collect()
        };
        let whole = run(&text);
        for chunk in [1, 7, 64, 1000] {
            let mut dec = Exposition::new(None);
            let mut sink = Lines::default();
            let mut pending: Vec<u8> = Vec::new();
            for piece in text.as_bytes().chunks(chunk) {
                pending.extend_from_slice(piece);
                let used = dec.feed(&pending, &ctx, &mut sink);
                pending.drain(..used);
            }
            dec.finish(&pending, &ctx, &mut sink);
            assert_eq!(summary(&sink.lines), summary(&whole), "chunk {chunk}");
            assert_eq!(dec.lines_read(), 6);
            assert_eq!(dec.scrape_ts_ms(), Some(1_764_331_201_000));
        }
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = Rng(3);
        let fields = FieldRegistry::default();
        let extra: Vec<Box<str>> = vec!["device".into()];
        let ctx = DecodeContext {
            fields: &fields,
            extra_labels: &extra,
        };
        let alphabet = b"{}\"=,\\ \t\r\n#01.eE+-_aUDIN:\xff\xc3";
        let base =
            format!("# scrape_ts 1764331201\n{SPEC_EXAMPLE}\n{SPEC_EXAMPLE} 1764331201000\n");
        for _ in 0..20_000 {
            let mut sink = Lines::default();
            decode_lines(&rng.bytes(alphabet, 80), &ctx, None, &mut sink);
            decode_lines(
                &rng.mutate(base.as_bytes(), alphabet),
                &ctx,
                Some(0),
                &mut sink,
            );
        }
        // A multi-megabyte line is one (bad or good) line, nothing worse.
        let huge = format!(
            "DCGM_FI_DEV_GPU_UTIL{{UUID=\"G\",pod=\"{}\"}} 1 1764331201000",
            "p".repeat(4 << 20)
        );
        assert_eq!(run(&huge)[0].got[0].labels[6].len(), 4 << 20);
    }
}
