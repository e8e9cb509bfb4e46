//! Rule conditions: `if`/`unless` followed by ACL names, `!`, `||` (or `or`) and
//! anonymous `{ ... }` ACLs; terms side by side are ANDed, as in HAProxy.

use super::acl::Acls;
use super::sample::Needs;
use super::FileReader;

/// One ACL in a condition, possibly negated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// `!name`.
    pub negated: bool,
    /// Index in the proxy's ACLs.
    pub acl: usize,
}

/// A rule's condition: OR of AND-groups of terms, inverted by `unless`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `unless`: the rule applies when the rest is false.
    pub unless: bool,
    /// Groups separated by `||`; each is true when all its terms are.
    pub any_of: Vec<Vec<Term>>,
}

impl Condition {
    /// Parses `if|unless TERMS...` (`words[0]` is `if` or `unless`).
    pub fn parse(words: &[String], acls: &mut Acls, files: FileReader<'_>) -> Result<Self, String> {
        let unless = match words.first().map(String::as_str) {
            Some("if") => false,
            Some("unless") => true,
            _ => return Err("a condition starts with 'if' or 'unless'".into()),
        };
        let mut any_of = vec![Vec::new()];
        let mut i = 1;
        while i < words.len() {
            let w = words[i].as_str();
            if w == "||" || w == "or" {
                if any_of.last().is_some_and(Vec::is_empty) {
                    return Err(format!("'{w}' without a term before it"));
                }
                any_of.push(Vec::new());
                i += 1;
                continue;
            }
            let (negated, w) = match w.strip_prefix('!') {
                Some("") => {
                    i += 1;
                    let next = words.get(i).ok_or("'!' at the end of a condition")?;
                    (true, next.as_str())
                }
                Some(rest) => (true, rest),
                None => (false, w),
            };
            let acl = if w == "{" {
                let end = words[i..]
                    .iter()
                    .position(|w| w == "}")
                    .ok_or("missing '}' after '{' in a condition")?;
                let inner = &words[i + 1..i + end];
                if inner.is_empty() {
                    return Err("empty '{ }' in a condition".into());
                }
                i += end;
                acls.anonymous(inner, files)?
            } else if w.starts_with('{') || w == "}" {
                return Err(format!("'{w}': braces must be separate words"));
            } else {
                acls.find(w, files)
                    .ok_or_else(|| format!("no such ACL: '{w}'"))?
            };
            any_of
                .last_mut()
                .expect("never empty")
                .push(Term { negated, acl });
            i += 1;
        }
        if any_of.iter().any(Vec::is_empty) {
            return Err("empty condition (or '||' at its end)".into());
        }
        Ok(Self { unless, any_of })
    }

    /// Where the condition's data comes from.
    pub fn needs(&self, acls: &Acls) -> Needs {
        self.any_of
            .iter()
            .flatten()
            .map(|t| acls.list[t.acl].needs())
            .max()
            .unwrap_or(Needs::Nothing)
    }
}

/// Splits a rule's words at its `if`/`unless`: the action's words, then the condition.
pub fn split_condition(words: &[String]) -> (&[String], Option<&[String]>) {
    match words.iter().position(|w| w == "if" || w == "unless") {
        Some(i) => (&words[..i], Some(&words[i..])),
        None => (words, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::{no_files, words};

    #[test]
    fn or_and_not_and_braces() {
        let mut acls = Acls::default();
        acls.define(&words("a path_beg /a"), &no_files).unwrap();
        acls.define(&words("b path_beg /b"), &no_files).unwrap();
        let c = Condition::parse(
            &words("if a !b || { src 10.0.0.0/8 } ! a"),
            &mut acls,
            &no_files,
        )
        .unwrap();
        assert!(!c.unless);
        assert_eq!(c.any_of.len(), 2);
        assert_eq!(
            c.any_of[0][1],
            Term {
                negated: true,
                acl: 1
            }
        );
        assert_eq!(c.any_of[1][0].acl, 2);
        assert!(c.any_of[1][1].negated);
    }

    #[test]
    fn unknown_acl_and_syntax_errors() {
        let mut acls = Acls::default();
        assert!(Condition::parse(&words("if nosuch"), &mut acls, &no_files)
            .unwrap_err()
            .contains("'nosuch'"));
        assert!(Condition::parse(&words("if TRUE ||"), &mut acls, &no_files).is_err());
        assert!(Condition::parse(&words("if { src"), &mut acls, &no_files).is_err());
        assert!(Condition::parse(&words("if"), &mut acls, &no_files).is_err());
    }
}
