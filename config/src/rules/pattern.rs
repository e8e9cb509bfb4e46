//! Pattern lists: what an ACL compares its sample with, and the keys of a map file.
//! Built once at load (regexes compiled, exact strings indexed) so matching a request
//! allocates nothing.

use crate::model::IpNet;
use std::collections::HashMap;
use std::sync::Arc;

/// How a sample is compared with patterns (`-m METHOD` or a derived ACL keyword).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMethod {
    /// `found`: the sample exists.
    Found,
    /// `bool`: the sample is true or a non-zero integer.
    Bool,
    /// `int`: integer ranges and comparisons.
    Int,
    /// `ip`: addresses and networks.
    Ip,
    /// `bin`: bytes given in hex.
    Bin,
    /// `len`: the sample's length against integer ranges.
    Len,
    /// `str`: equal strings.
    Str,
    /// `sub`: contains.
    Sub,
    /// `reg`: a regular expression matches.
    Reg,
    /// `beg`: starts with.
    Beg,
    /// `end`: ends with.
    End,
    /// `dir`: a slash-delimited part of the sample.
    Dir,
    /// `dom`: a dot-delimited part of the sample.
    Dom,
}

impl MatchMethod {
    /// Parses the word after `-m`, or a derived keyword's suffix.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "found" => Self::Found,
            "bool" => Self::Bool,
            "int" => Self::Int,
            "ip" => Self::Ip,
            "bin" => Self::Bin,
            "len" => Self::Len,
            "str" => Self::Str,
            "sub" => Self::Sub,
            "reg" => Self::Reg,
            "beg" => Self::Beg,
            "end" => Self::End,
            "dir" => Self::Dir,
            "dom" => Self::Dom,
            _ => return None,
        })
    }

    /// Whether the method takes no pattern at all.
    pub fn patternless(self) -> bool {
        matches!(self, Self::Found | Self::Bool)
    }
}

/// An inclusive integer range; open ends are `i64::MIN` / `i64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntRange {
    /// Smallest matching value.
    pub lo: i64,
    /// Largest matching value.
    pub hi: i64,
}

impl IntRange {
    /// Whether `v` is in the range.
    pub fn contains(&self, v: i64) -> bool {
        self.lo <= v && v <= self.hi
    }
}

/// An integer comparison operator written before integer patterns (`lt 10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOp {
    /// `eq` (the default).
    Eq,
    /// `ge`.
    Ge,
    /// `gt`.
    Gt,
    /// `le`.
    Le,
    /// `lt`.
    Lt,
}

impl IntOp {
    /// Parses an operator word.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "eq" => Self::Eq,
            "ge" => Self::Ge,
            "gt" => Self::Gt,
            "le" => Self::Le,
            "lt" => Self::Lt,
            _ => return None,
        })
    }
}

/// The compiled patterns of one list, by kind.
#[derive(Debug, Clone)]
pub enum Patterns {
    /// `found` and `bool` take none.
    None,
    /// `int` and `len`.
    Ints(Vec<IntRange>),
    /// `ip`.
    Ips(Vec<IpNet>),
    /// The string methods and `bin`; `exact` indexes the list for `str`.
    Strings {
        /// In the order given (lower-cased when matching ignores case).
        list: Vec<Box<[u8]>>,
        /// Pattern → first position, for `str`.
        exact: HashMap<Box<[u8]>, usize>,
    },
    /// `reg`.
    Regexes(Vec<regex::bytes::Regex>),
}

/// Patterns with their match method, and for a map the value of each pattern.
#[derive(Debug, Clone)]
pub struct PatternList {
    /// How samples are compared.
    pub method: MatchMethod,
    /// `-i`: ignore case.
    pub icase: bool,
    /// The patterns.
    pub patterns: Patterns,
    /// A map's values, one per pattern in order (empty for an ACL).
    pub values: Vec<Arc<[u8]>>,
}

/// Compiles a regular expression, ignoring case when asked.
pub fn compile_regex(re: &str, icase: bool) -> Result<regex::bytes::Regex, String> {
    regex::bytes::RegexBuilder::new(re)
        .case_insensitive(icase)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(s) => format!(
                "invalid regex '{re}': {}",
                s.lines().last().unwrap_or_default()
            ),
            other => format!("invalid regex '{re}': {other}"),
        })
}

fn parse_int(s: &str) -> Result<i64, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not an integer pattern"))
}

impl PatternList {
    /// An empty list for `method`.
    pub fn new(method: MatchMethod, icase: bool) -> Self {
        let patterns = match method {
            MatchMethod::Found | MatchMethod::Bool => Patterns::None,
            MatchMethod::Int | MatchMethod::Len => Patterns::Ints(Vec::new()),
            MatchMethod::Ip => Patterns::Ips(Vec::new()),
            MatchMethod::Reg => Patterns::Regexes(Vec::new()),
            _ => Patterns::Strings {
                list: Vec::new(),
                exact: HashMap::new(),
            },
        };
        Self {
            method,
            icase,
            patterns,
            values: Vec::new(),
        }
    }

    /// How many patterns there are.
    pub fn len(&self) -> usize {
        match &self.patterns {
            Patterns::None => 0,
            Patterns::Ints(v) => v.len(),
            Patterns::Ips(v) => v.len(),
            Patterns::Strings { list, .. } => list.len(),
            Patterns::Regexes(v) => v.len(),
        }
    }

    /// Whether there is no pattern.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one pattern; `op` applies to integer patterns.
    pub fn add(&mut self, text: &str, op: IntOp) -> Result<(), String> {
        let icase = self.icase;
        let method = self.method;
        match &mut self.patterns {
            Patterns::None => {
                return Err(format!(
                    "match method '{method:?}' takes no pattern, got '{text}'"
                ))
            }
            Patterns::Ints(v) => v.push(int_range(text, op)?),
            Patterns::Ips(v) => v.push(IpNet::parse(text).map_err(|_| {
                format!("'{text}' is not an IP address or network (host names are not resolved)")
            })?),
            Patterns::Regexes(v) => v.push(compile_regex(text, icase)?),
            Patterns::Strings { list, exact } => {
                let bytes: Box<[u8]> = if method == MatchMethod::Bin {
                    hex(text)?.into()
                } else if icase {
                    text.to_ascii_lowercase().into_bytes().into()
                } else {
                    text.as_bytes().into()
                };
                if method == MatchMethod::Str {
                    exact.entry(bytes.clone()).or_insert(list.len());
                }
                list.push(bytes);
            }
        }
        Ok(())
    }

    /// Adds every pattern of a pattern file: one per line, blank lines and `#` comments
    /// skipped, surrounding blanks trimmed.
    pub fn add_file(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.add(line, IntOp::Eq)
                .map_err(|e| format!("line {}: {e}", n + 1))?;
        }
        Ok(())
    }

    /// A map file: `KEY VALUE` per line (the value is the rest of the line).
    pub fn from_map(method: MatchMethod, icase: bool, text: &str) -> Result<Self, String> {
        let mut list = Self::new(method, icase);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = match line.split_once([' ', '\t']) {
                Some((k, v)) => (k, v.trim()),
                None => (line, ""),
            };
            list.add(key, IntOp::Eq)
                .map_err(|e| format!("line {}: {e}", n + 1))?;
            list.values.push(value.as_bytes().into());
        }
        Ok(list)
    }
}

fn int_range(text: &str, op: IntOp) -> Result<IntRange, String> {
    if let Some((lo, hi)) = text.split_once(':') {
        if op != IntOp::Eq {
            return Err(format!("a range '{text}' cannot follow an operator"));
        }
        let lo = if lo.is_empty() {
            i64::MIN
        } else {
            parse_int(lo)?
        };
        let hi = if hi.is_empty() {
            i64::MAX
        } else {
            parse_int(hi)?
        };
        return Ok(IntRange { lo, hi });
    }
    let v = parse_int(text)?;
    Ok(match op {
        IntOp::Eq => IntRange { lo: v, hi: v },
        IntOp::Ge => IntRange {
            lo: v,
            hi: i64::MAX,
        },
        IntOp::Gt => IntRange {
            lo: v.saturating_add(1),
            hi: i64::MAX,
        },
        IntOp::Le => IntRange {
            lo: i64::MIN,
            hi: v,
        },
        IntOp::Lt => IntRange {
            lo: i64::MIN,
            hi: v.saturating_sub(1),
        },
    })
}

/// Bytes written in hexadecimal (`-m bin` patterns, `send-binary`, `expect binary`).
pub fn hex(text: &str) -> Result<Vec<u8>, String> {
    ::hex::decode(text).map_err(|e| format!("'{text}' is not hexadecimal bytes: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_operators_and_ranges() {
        let r = int_range("10", IntOp::Lt).unwrap();
        assert!(r.contains(9) && !r.contains(10));
        let r = int_range("5:", IntOp::Eq).unwrap();
        assert!(r.contains(5) && r.contains(i64::MAX) && !r.contains(4));
        assert!(int_range("x", IntOp::Eq).is_err());
    }

    #[test]
    fn maps_keep_values_in_order() {
        let m = PatternList::from_map(
            MatchMethod::Beg,
            false,
            "# comment\n/api backend_api\n\n/ backend_web\n",
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(&*m.values[1], b"backend_web");
    }

    #[test]
    fn bad_regex_is_refused() {
        assert!(compile_regex("(", false).unwrap_err().contains("'('"));
    }
}
