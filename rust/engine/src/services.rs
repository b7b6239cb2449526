//! Services: SLOs per service (with a default) and the pod-to-service patterns that map a
//! pod's GPUs (or a request without a service name) to a service.

use std::collections::HashMap;

/// A latency objective: `target` of requests at or under `latency_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    pub latency_ms: f64,
    pub target: f64,
}

impl Default for Slo {
    fn default() -> Self {
        Slo {
            latency_ms: 200.0,
            target: 0.95,
        }
    }
}

/// `pattern` (glob: `*`, `?`, `[seq]`, `[!seq]`) over pod names, optionally only in one
/// namespace, names a service.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRule {
    pub namespace: String,
    pub pattern: String,
    pub service: String,
}

#[derive(Debug, Clone, Default)]
pub struct Services {
    pub default_slo: Slo,
    pub slos: HashMap<String, Slo>,
    pub pod_rules: Vec<PodRule>,
}

impl Services {
    pub fn slo_of(&self, service: &str) -> Slo {
        self.slos.get(service).copied().unwrap_or(self.default_slo)
    }

    /// The service the first matching rule names for a pod.
    pub fn service_of_pod(&self, namespace: &str, pod: &str) -> Option<&str> {
        if pod.is_empty() {
            return None;
        }
        self.pod_rules
            .iter()
            .find(|r| {
                (r.namespace.is_empty() || r.namespace == namespace) && glob_match(&r.pattern, pod)
            })
            .map(|r| r.service.as_str())
    }
}

/// Shell-style matching as Python's `fnmatch.fnmatchcase`: `*` any run, `?` one character,
/// `[seq]` / `[!seq]` a character (ranges `a-z` allowed), case-sensitive.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class_match(&p, pi, t[ti]) {
                        if matched {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        // An unclosed '[' is a literal, as in fnmatch.
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class starting at `p[i] == '['`: `(matched, index after ']')`,
/// or `None` when the class is not closed.
fn class_match(p: &[char], i: usize, c: char) -> Option<(bool, usize)> {
    let mut j = i + 1;
    let negate = matches!(p.get(j), Some('!'));
    if negate {
        j += 1;
    }
    let start = j;
    let mut matched = false;
    while j < p.len() && (p[j] != ']' || j == start) {
        if j + 2 < p.len() && p[j + 1] == '-' && p[j + 2] != ']' {
            if p[j] <= c && c <= p[j + 2] {
                matched = true;
            }
            j += 3;
        } else {
            if p[j] == c {
                matched = true;
            }
            j += 1;
        }
    }
    if j >= p.len() {
        return None;
    }
    Some((matched != negate, j + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_like_fnmatchcase() {
        let cases = [
            ("vllm-chat-*", "vllm-chat-5d8c-0", true),
            ("vllm-chat-*", "vllm-code-0", false),
            ("ranker-?", "ranker-1", true),
            ("ranker-?", "ranker-12", false),
            ("*-[0-9]", "ranker-7", true),
            ("*-[!0-9]", "ranker-7", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("[", "[", true),
            ("*", "", true),
            ("Pod", "pod", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn first_matching_rule_wins_and_namespace_filters() {
        let s = Services {
            pod_rules: vec![
                PodRule {
                    namespace: "team-chat".into(),
                    pattern: "vllm-*".into(),
                    service: "chat".into(),
                },
                PodRule {
                    namespace: String::new(),
                    pattern: "vllm-*".into(),
                    service: "other".into(),
                },
            ],
            ..Services::default()
        };
        assert_eq!(s.service_of_pod("team-chat", "vllm-0"), Some("chat"));
        assert_eq!(s.service_of_pod("team-x", "vllm-0"), Some("other"));
        assert_eq!(s.service_of_pod("team-x", "ranker-0"), None);
        assert_eq!(s.service_of_pod("team-x", ""), None);
        assert_eq!(s.slo_of("chat"), Slo::default());
    }
}
