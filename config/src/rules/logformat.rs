//! Log-format strings: text with `%[expr]` samples and `%ci`-style aliases, used in
//! header values, redirect locations, `set-path /v2%[path]` and dynamic `use_backend`.
//! One implementation, shared with the logs when they come.

use super::sample::{fetch, Needs, Sample};
use super::FileReader;

/// One piece of a log-format string.
#[derive(Debug, Clone)]
pub enum LfPart {
    /// Literal bytes.
    Text(Box<[u8]>),
    /// A sample, rendered as text.
    Sample(Sample),
}

/// A parsed log-format string.
#[derive(Debug, Clone, Default)]
pub struct LogFormat {
    /// The pieces, in order.
    pub parts: Vec<LfPart>,
}

/// Log variables that are sample fetches under another name.
const ALIASES: &[(&str, &str)] = &[
    ("ci", "src"),
    ("cp", "src_port"),
    ("fi", "dst"),
    ("fp", "dst_port"),
    ("f", "fe_name"),
    ("ft", "fe_name"),
    ("b", "be_name"),
    ("s", "srv_name"),
    ("HM", "method"),
    ("HU", "url"),
    ("HP", "path"),
    ("HQ", "query"),
    ("ST", "status"),
];

impl LogFormat {
    /// Parses a log-format string.
    pub fn parse(text: &str, files: FileReader<'_>) -> Result<Self, String> {
        let b = text.as_bytes();
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                lit.push(b[i]);
                i += 1;
                continue;
            }
            i += 1;
            if b.get(i) == Some(&b'%') {
                lit.push(b'%');
                i += 1;
                continue;
            }
            if b.get(i) == Some(&b'{') {
                let end = text[i..]
                    .find('}')
                    .ok_or_else(|| format!("missing '}}' in log-format '{text}'"))?;
                return Err(format!(
                    "log-format flags '%{}' are not supported by percore yet (planned: logs, stats and the runtime socket)",
                    &text[i..i + end + 1]
                ));
            }
            if !lit.is_empty() {
                parts.push(LfPart::Text(std::mem::take(&mut lit).into()));
            }
            if b.get(i) == Some(&b'[') {
                let end = closing_bracket(&b[i..])
                    .ok_or_else(|| format!("missing ']' in log-format '{text}'"))?;
                let expr = &text[i + 1..i + end];
                parts.push(LfPart::Sample(Sample::parse(expr, files)?));
                i += end + 1;
                continue;
            }
            let len = b[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric())
                .count();
            let var = &text[i..i + len];
            i += len;
            match ALIASES.iter().find(|(a, _)| *a == var) {
                Some((_, f)) => parts.push(LfPart::Sample(Sample::with_converters(
                    fetch(f, &[])?,
                    &[],
                    files,
                )?)),
                None if var.is_empty() => {
                    return Err(format!("a '%' in log-format '{text}' is not followed by a variable (write '%%' for a percent sign)"))
                }
                None => {
                    return Err(format!(
                        "log-format variable '%{var}' is not supported by percore yet (planned: logs, stats and the runtime socket)"
                    ))
                }
            }
        }
        if !lit.is_empty() {
            parts.push(LfPart::Text(lit.into()));
        }
        Ok(Self { parts })
    }

    /// Where the string's samples come from.
    pub fn needs(&self) -> Needs {
        self.parts
            .iter()
            .map(|p| match p {
                LfPart::Text(_) => Needs::Nothing,
                LfPart::Sample(s) => s.needs(),
            })
            .max()
            .unwrap_or(Needs::Nothing)
    }

    /// The text when the string has no variable part.
    pub fn as_literal(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(b""),
            [LfPart::Text(t)] => Some(t),
            _ => None,
        }
    }
}

/// The position of the `]` closing the `[` at `b[0]`, outside parentheses and quotes.
fn closing_bracket(b: &[u8]) -> Option<usize> {
    let (mut depth, mut quote, mut i) = (0i32, None, 1);
    while i < b.len() {
        match (quote, b[i]) {
            (_, b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, c @ (b'"' | b'\'')) => quote = Some(c),
            (None, b'(') => depth += 1,
            (None, b')') => depth -= 1,
            (None, b']') if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::test_support::no_files;

    fn parse(s: &str) -> Result<LogFormat, String> {
        LogFormat::parse(s, &no_files)
    }

    #[test]
    fn text_samples_and_aliases() {
        let lf = parse("/v2%[path]").unwrap();
        assert_eq!(lf.parts.len(), 2);
        assert!(matches!(&lf.parts[0], LfPart::Text(t) if &**t == b"/v2"));
        let lf = parse("be_%[req.hdr(host),lower,regsub(\\.,_,g)]").unwrap();
        assert_eq!(lf.parts.len(), 2);
        assert_eq!(parse("%ci:%cp 100%%").unwrap().parts.len(), 4);
        assert_eq!(parse("plain").unwrap().as_literal(), Some(&b"plain"[..]));
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse("%[path").unwrap_err().contains("']'"));
        assert!(parse("%[nosuch]").unwrap_err().contains("'nosuch'"));
        assert!(parse("%Tr").unwrap_err().contains("'%Tr'"));
        assert!(parse("100%").is_err());
    }
}
