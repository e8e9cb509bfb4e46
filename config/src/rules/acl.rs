//! ACLs: named tests on a sample (`acl static path_beg /static`). Several lines with one
//! name OR together; HAProxy's predefined ACLs (`TRUE`, `LOCALHOST`, `METH_GET`, ...)
//! are defined in the same language and added to a proxy when first used.

use super::pattern::{IntOp, MatchMethod, PatternList};
use super::sample::{call, fetch, split_top, Fetch, Needs, Sample};
use super::FileReader;

/// One ACL line's test: a sample and the patterns it is compared with.
#[derive(Debug, Clone)]
pub struct AclTest {
    /// What is tested.
    pub sample: Sample,
    /// What it is compared with.
    pub patterns: PatternList,
}

/// A named (or anonymous) ACL: true when any of its tests is.
#[derive(Debug, Clone)]
pub struct Acl {
    /// The name (`{...}` blocks get a generated one).
    pub name: String,
    /// The tests, one per line.
    pub tests: Vec<AclTest>,
}

impl Acl {
    /// Where the ACL's data comes from: the latest phase among its tests.
    pub fn needs(&self) -> Needs {
        self.tests
            .iter()
            .map(|t| t.sample.needs())
            .max()
            .unwrap_or(Needs::Nothing)
    }
}

/// HAProxy's predefined ACLs, written in the ACL language.
const PREDEFINED: &[(&str, &str)] = &[
    ("TRUE", "always_true"),
    ("FALSE", "always_false"),
    ("HTTP", "req.proto_http"),
    ("HTTP_1.0", "req.ver 1.0"),
    ("HTTP_1.1", "req.ver 1.1"),
    ("HTTP_CONTENT", "req.hdr_val(content-length) gt 0"),
    ("HTTP_URL_ABS", "url_reg ^[^/:]*://"),
    ("HTTP_URL_SLASH", "url_beg /"),
    ("HTTP_URL_STAR", "url *"),
    ("LOCALHOST", "src 127.0.0.1/8 ::1"),
    ("METH_CONNECT", "method CONNECT"),
    ("METH_DELETE", "method DELETE"),
    ("METH_GET", "method GET HEAD"),
    ("METH_HEAD", "method HEAD"),
    ("METH_OPTIONS", "method OPTIONS"),
    ("METH_POST", "method POST"),
    ("METH_PUT", "method PUT"),
    ("METH_TRACE", "method TRACE"),
    ("REQ_CONTENT", "req.len gt 0"),
    ("WAIT_END", "always_false"),
];

/// A proxy's ACLs, looked up by name when conditions are parsed.
#[derive(Debug, Clone, Default)]
pub struct Acls {
    /// Every ACL, in order of first appearance; conditions refer to them by index.
    pub list: Vec<Acl>,
}

impl Acls {
    /// The index of ACL `name`, adding a predefined one on first use.
    pub fn find(&mut self, name: &str, files: FileReader<'_>) -> Option<usize> {
        if let Some(i) = self.list.iter().position(|a| a.name == name) {
            return Some(i);
        }
        let (_, def) = PREDEFINED.iter().find(|(n, _)| *n == name)?;
        let words: Vec<String> = def.split(' ').map(String::from).collect();
        let test = parse_test(&words, files).ok()?;
        self.list.push(Acl {
            name: name.into(),
            tests: vec![test],
        });
        Some(self.list.len() - 1)
    }

    /// `acl NAME CRITERION [FLAGS] [OPERATOR] [VALUES]`: adds a test to ACL `NAME`.
    pub fn define(&mut self, args: &[String], files: FileReader<'_>) -> Result<(), String> {
        let (name, rest) = args
            .split_first()
            .ok_or("'acl' expects a name and a criterion")?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            return Err(format!("invalid ACL name '{name}'"));
        }
        if PREDEFINED.iter().any(|(n, _)| n == name) {
            return Err(format!(
                "'{name}' is a predefined ACL and cannot be redefined"
            ));
        }
        if rest.is_empty() {
            return Err(format!("'acl {name}' expects a criterion"));
        }
        let test = parse_test(rest, files)?;
        match self.list.iter_mut().find(|a| a.name == *name) {
            Some(acl) => acl.tests.push(test),
            None => self.list.push(Acl {
                name: name.clone(),
                tests: vec![test],
            }),
        }
        Ok(())
    }

    /// Adds an anonymous ACL made of `words` (the inside of `{ ... }`).
    pub fn anonymous(&mut self, words: &[String], files: FileReader<'_>) -> Result<usize, String> {
        let test = parse_test(words, files)?;
        self.list.push(Acl {
            name: format!("anonymous#{}", self.list.len()),
            tests: vec![test],
        });
        Ok(self.list.len() - 1)
    }
}

/// The fetch and match method of a derived keyword such as `path_beg` or `hdr_sub(host)`.
fn derived(text: &str) -> Option<(Fetch, MatchMethod)> {
    let (name, args) = call(text).ok()?;
    let (base, suffix) = name.rsplit_once('_')?;
    let method = MatchMethod::parse(suffix)?;
    if !matches!(
        method,
        MatchMethod::Beg
            | MatchMethod::End
            | MatchMethod::Sub
            | MatchMethod::Dir
            | MatchMethod::Dom
            | MatchMethod::Reg
            | MatchMethod::Len
    ) {
        return None;
    }
    let base = match base {
        "urlp" => "url_param",
        other => other,
    };
    Some((fetch(base, &args).ok()?, method))
}

/// Parses `CRITERION [FLAGS] [OPERATOR] [VALUES]`.
fn parse_test(words: &[String], files: FileReader<'_>) -> Result<AclTest, String> {
    let criterion = &words[0];
    let calls = split_top(criterion, b',')?;
    let (sample, mut method) = match derived(calls[0]) {
        Some((fetch, method)) => (
            Sample::with_converters(fetch, &calls[1..], files)?,
            Some(method),
        ),
        None => (Sample::parse(criterion, files)?, None),
    };
    let mut icase = false;
    let mut pattern_files = Vec::new();
    let mut i = 1;
    while let Some(w) = words.get(i) {
        match w.as_str() {
            "-i" => icase = true,
            "-n" | "-M" => {}
            "-u" => i += 1,
            "-f" => {
                i += 1;
                let f = words.get(i).ok_or("'-f' expects a file name")?;
                pattern_files.push(f.clone());
            }
            "-m" => {
                i += 1;
                let m = words.get(i).ok_or("'-m' expects a match method")?;
                let m =
                    MatchMethod::parse(m).ok_or_else(|| format!("unknown match method '{m}'"))?;
                if method.is_some_and(|d| d != m) && !calls[0].contains('(') {
                    return Err(format!(
                        "'-m {}' conflicts with the match method of '{criterion}'",
                        words[i]
                    ));
                }
                method = Some(m);
            }
            "--" => {
                i += 1;
                break;
            }
            flag if flag.starts_with('-') && flag.len() > 1 && flag.parse::<i64>().is_err() => {
                return Err(format!("unknown ACL flag '{flag}'"))
            }
            _ => break,
        }
        i += 1;
    }
    let method = match method.or(sample.output.default_match()) {
        Some(m) => m,
        None => {
            return Err(format!(
                "'{criterion}' has no default match method: name one with '-m'"
            ))
        }
    };
    let mut patterns = PatternList::new(method, icase);
    let mut op = IntOp::Eq;
    for w in &words[i..] {
        if matches!(method, MatchMethod::Int | MatchMethod::Len) {
            if let Some(o) = IntOp::parse(w) {
                op = o;
                continue;
            }
        }
        patterns.add(w, op)?;
    }
    for f in &pattern_files {
        let text = files(f)?;
        patterns
            .add_file(&text)
            .map_err(|e| format!("pattern file '{f}' {e}"))?;
    }
    if patterns.is_empty() && !method.patternless() && pattern_files.is_empty() {
        return Err(format!("ACL criterion '{criterion}' has no value to match"));
    }
    Ok(AclTest { sample, patterns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::sample::HeaderForm;
    use crate::rules::test_support::{no_files, words};

    #[test]
    fn derived_keywords_pick_fetch_and_method() {
        let t = parse_test(&words("path_beg /static"), &no_files).unwrap();
        assert!(matches!(t.sample.fetch, Fetch::Path));
        assert_eq!(t.patterns.method, MatchMethod::Beg);
        let t = parse_test(&words("hdr_sub(host) -i site1.com"), &no_files).unwrap();
        assert!(matches!(
            t.sample.fetch,
            Fetch::Header {
                form: HeaderForm::Value,
                ..
            }
        ));
        assert!(t.patterns.icase);
        let t = parse_test(&words("hdr_cnt(host) gt 1"), &no_files).unwrap();
        assert_eq!(t.patterns.method, MatchMethod::Int);
    }

    #[test]
    fn default_methods_follow_the_sample_type() {
        let t = parse_test(&words("src 10.0.0.0/8"), &no_files).unwrap();
        assert_eq!(t.patterns.method, MatchMethod::Ip);
        let t = parse_test(&words("rand(100) lt 10"), &no_files).unwrap();
        assert_eq!(t.patterns.method, MatchMethod::Int);
        assert!(parse_test(&words("var(txn.x) foo"), &no_files)
            .unwrap_err()
            .contains("-m"));
    }

    #[test]
    fn predefined_acls_parse() {
        let mut acls = Acls::default();
        for (name, _) in PREDEFINED {
            assert!(acls.find(name, &no_files).is_some(), "{name}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse_test(&words("path_beg"), &no_files)
            .unwrap_err()
            .contains("no value"));
        assert!(parse_test(&words("src -x 1"), &no_files)
            .unwrap_err()
            .contains("'-x'"));
        assert!(parse_test(&words("src nothost"), &no_files)
            .unwrap_err()
            .contains("'nothost'"));
    }
}
