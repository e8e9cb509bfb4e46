//! HAProxy's lexical rules for one configuration line: words split on blanks, `#`
//! comments, single quotes (literal), double quotes (escapes and environment expansion),
//! and backslash escapes. Unknown escapes such as `\.` or `\1` are kept as written, so
//! regular expressions and back-references survive. Never panics on any input.

/// Most words a line may have, as in HAProxy.
pub const MAX_LINE_ARGS: usize = 64;

/// Looks up an environment variable; the parser passes the real environment, tests a map.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

#[derive(Clone, Copy, PartialEq)]
enum Quote {
    None,
    Single,
    Double,
}

/// Splits `line` into words, applying quotes, escapes and `${VAR}` expansion.
pub fn split_line(line: &str, env: EnvLookup<'_>) -> Result<Vec<String>, String> {
    let bytes = line.as_bytes();
    let mut words: Vec<String> = Vec::new();
    let mut word: Vec<u8> = Vec::new();
    let mut in_word = false;
    let mut quote = Quote::None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match (quote, c) {
            (Quote::None, b' ' | b'\t' | b'\r' | b'\n') => {
                if in_word {
                    push_word(&mut words, &mut word)?;
                    in_word = false;
                }
                i += 1;
            }
            (Quote::None, b'#') => break,
            (Quote::None, b'\'') => {
                quote = Quote::Single;
                in_word = true;
                i += 1;
            }
            (Quote::None, b'"') => {
                quote = Quote::Double;
                in_word = true;
                i += 1;
            }
            (Quote::Single, b'\'') | (Quote::Double, b'"') => {
                quote = Quote::None;
                i += 1;
            }
            (Quote::None | Quote::Double, b'\\') => {
                in_word = true;
                i += escape(&bytes[i..], &mut word)?;
            }
            (Quote::Double, b'$') => {
                i += expand(&bytes[i..], &mut word, env)?;
            }
            _ => {
                in_word = true;
                word.push(c);
                i += 1;
            }
        }
    }
    match quote {
        Quote::Single => return Err("unmatched single quote".into()),
        Quote::Double => return Err("unmatched double quote".into()),
        Quote::None => {}
    }
    if in_word {
        push_word(&mut words, &mut word)?;
    }
    Ok(words)
}

fn push_word(words: &mut Vec<String>, word: &mut Vec<u8>) -> Result<(), String> {
    if words.len() >= MAX_LINE_ARGS {
        return Err(format!(
            "too many words on one line (at most {MAX_LINE_ARGS})"
        ));
    }
    let text = String::from_utf8(std::mem::take(word))
        .map_err(|_| "a word is not valid UTF-8".to_string())?;
    words.push(text);
    Ok(())
}

/// Applies the escape starting at `rest[0] == b'\\'`; returns how many bytes it used.
fn escape(rest: &[u8], word: &mut Vec<u8>) -> Result<usize, String> {
    let Some(&next) = rest.get(1) else {
        return Err("a backslash ends the line".into());
    };
    let (out, used) = match next {
        b' ' | b'\\' | b'#' | b'\'' | b'"' | b'$' => (next, 2),
        b'r' => (b'\r', 2),
        b'n' => (b'\n', 2),
        b't' => (b'\t', 2),
        b'x' => {
            let hex = rest
                .get(2..4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "'\\x' must be followed by two hexadecimal digits".to_string())?;
            (hex, 4)
        }
        _ => {
            word.push(b'\\');
            return Ok(1);
        }
    };
    word.push(out);
    Ok(used)
}

/// Expands `$NAME`, `${NAME}` or `${NAME-default}` starting at `rest[0] == b'$'`.
fn expand(rest: &[u8], word: &mut Vec<u8>, env: EnvLookup<'_>) -> Result<usize, String> {
    let is_name = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    if rest.get(1) == Some(&b'{') {
        let close = rest
            .iter()
            .position(|&c| c == b'}')
            .ok_or_else(|| "'${' without a closing '}'".to_string())?;
        let inner = std::str::from_utf8(&rest[2..close])
            .map_err(|_| "a variable name is not valid UTF-8".to_string())?;
        let (name, default) = match inner.find('-') {
            Some(dash) => (&inner[..dash], Some(&inner[dash + 1..])),
            None => (inner, None),
        };
        if name.is_empty() || !name.bytes().all(is_name) {
            return Err(format!("invalid variable name in '${{{inner}}}'"));
        }
        match (env(name), default) {
            (Some(value), _) => word.extend_from_slice(value.as_bytes()),
            (None, Some(default)) => word.extend_from_slice(default.as_bytes()),
            (None, None) => {}
        }
        return Ok(close + 1);
    }
    let len = rest[1..].iter().take_while(|&&c| is_name(c)).count();
    if len == 0 {
        word.push(b'$');
        return Ok(1);
    }
    let name = std::str::from_utf8(&rest[1..1 + len]).unwrap_or_default();
    if let Some(value) = env(name) {
        word.extend_from_slice(value.as_bytes());
    }
    Ok(1 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("10080".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn split(line: &str) -> Vec<String> {
        split_line(line, &env).unwrap()
    }

    #[test]
    fn words_and_comments() {
        assert_eq!(split("  bind *:80   # comment"), ["bind", "*:80"]);
        assert_eq!(split("# only a comment"), Vec::<String>::new());
        assert_eq!(split("a\tb"), ["a", "b"]);
    }

    #[test]
    fn quotes() {
        assert_eq!(split("a 'b c' \"d e\""), ["a", "b c", "d e"]);
        assert_eq!(
            split("'#not comment' \"$PORT\" '$PORT'"),
            ["#not comment", "10080", "$PORT"]
        );
        assert_eq!(
            split("bind 127.0.0.1:\"${PORT}\""),
            ["bind", "127.0.0.1:10080"]
        );
        assert_eq!(split("x \"${NOPE-8080}\" \"${NOPE}\""), ["x", "8080", ""]);
        assert_eq!(split("x $PORT"), ["x", "$PORT"]);
        assert!(split_line("a 'b", &env).is_err());
        assert!(split_line("a \"b", &env).is_err());
        assert!(split_line("a \"${b\"", &env).is_err());
    }

    #[test]
    fn escapes() {
        assert_eq!(
            split(r"stats realm HAProxy\ Statistics"),
            ["stats", "realm", "HAProxy Statistics"]
        );
        assert_eq!(split(r"HTTP/1.0\r\nHost:\ www"), ["HTTP/1.0\r\nHost: www"]);
        assert_eq!(
            split(r"^/img/[0-9]+\.(png|jpg)$ \1"),
            [r"^/img/[0-9]+\.(png|jpg)$", r"\1"]
        );
        assert_eq!(split(r"\x41\#"), ["A#"]);
        assert!(split_line(r"a\", &env).is_err());
        assert!(split_line(r"\xZZ", &env).is_err());
    }

    #[test]
    fn too_many_words() {
        let line = "w ".repeat(MAX_LINE_ARGS + 1);
        assert!(split_line(&line, &env).is_err());
    }
}
