//! The expressions of `.if` / `.elif` blocks and of `percore -cc`: `defined()`,
//! `feature()`, `version_atleast()`, `version_before()`, `streq()`, `strneq()`, numbers,
//! `!`, `&&`, `||` and parentheses.

use crate::lexer::EnvLookup;

/// The HAProxy language level percore implements: `version_atleast(X)` compares with this,
/// so configurations written for HAProxy pick the branches HAProxy 2.6 would.
pub const LANGUAGE_VERSION: &str = "2.6";

/// What `feature(NAME)` answers true for.
pub const FEATURES: &[&str] = &[
    "LINUX_SPLICE",
    "REUSEPORT",
    "CPU_AFFINITY",
    "THREAD",
    "TPROXY",
    "IO_URING",
];

/// Evaluates a condition given as the words following `.if`.
pub fn evaluate(words: &[String], env: EnvLookup<'_>) -> Result<bool, String> {
    let text = words.join(" ");
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        env,
    };
    let value = p.or()?;
    p.skip_blanks();
    if p.pos != p.s.len() {
        return Err(format!("unexpected '{}' in condition", &text[p.pos..]));
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    env: EnvLookup<'a>,
}

impl Parser<'_> {
    fn skip_blanks(&mut self) {
        while self.s.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_blanks();
        if self.s[self.pos..].starts_with(token.as_bytes()) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<bool, String> {
        let mut value = self.and()?;
        while self.eat("||") {
            let rhs = self.and()?;
            value = value || rhs;
        }
        Ok(value)
    }

    fn and(&mut self) -> Result<bool, String> {
        let mut value = self.unary()?;
        while self.eat("&&") {
            let rhs = self.unary()?;
            value = value && rhs;
        }
        Ok(value)
    }

    fn unary(&mut self) -> Result<bool, String> {
        if self.eat("!") {
            return Ok(!self.unary()?);
        }
        if self.eat("(") {
            let value = self.or()?;
            if !self.eat(")") {
                return Err("missing ')' in condition".into());
            }
            return Ok(value);
        }
        self.term()
    }

    fn term(&mut self) -> Result<bool, String> {
        self.skip_blanks();
        let start = self.pos;
        while self
            .s
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        {
            self.pos += 1;
        }
        let name = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
        if name.is_empty() {
            return Err("empty term in condition".into());
        }
        if !self.eat("(") {
            return name.parse::<i64>().map(|n| n != 0).map_err(|_| {
                format!("unknown term '{name}' in condition (expected a function call or a number)")
            });
        }
        let args_start = self.pos;
        let close = self.s[self.pos..]
            .iter()
            .position(|&c| c == b')')
            .ok_or_else(|| format!("missing ')' after '{name}('"))?;
        let args = String::from_utf8_lossy(&self.s[args_start..args_start + close]).into_owned();
        self.pos = args_start + close + 1;
        let args: Vec<&str> = if args.is_empty() {
            Vec::new()
        } else {
            args.split(',').collect()
        };
        let want = |n: usize| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "'{name}' takes {n} argument(s), got {}",
                    args.len()
                ))
            }
        };
        match name.as_str() {
            "defined" => {
                want(1)?;
                Ok((self.env)(args[0].trim()).is_some())
            }
            "feature" => {
                want(1)?;
                Ok(FEATURES.contains(&args[0].trim()))
            }
            "version_atleast" => {
                want(1)?;
                Ok(compare_versions(LANGUAGE_VERSION, args[0].trim()) != std::cmp::Ordering::Less)
            }
            "version_before" => {
                want(1)?;
                Ok(compare_versions(LANGUAGE_VERSION, args[0].trim()) == std::cmp::Ordering::Less)
            }
            "streq" => {
                want(2)?;
                Ok(args[0] == args[1])
            }
            "strneq" => {
                want(2)?;
                Ok(args[0] != args[1])
            }
            _ => Err(format!("unknown function '{name}' in condition")),
        }
    }
}

/// Compares dotted versions numerically, part by part (`2.10` is after `2.9`).
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| -> Vec<u64> {
        v.split(['.', '-'])
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let (a, b) = (parts(a), parts(b));
    let len = a.len().max(b.len());
    for i in 0..len {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x.cmp(&y);
        }
    }
    std::cmp::Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SET").then(|| "1".to_string())
    }

    fn eval(s: &str) -> Result<bool, String> {
        let words: Vec<String> = s.split(' ').map(String::from).collect();
        evaluate(&words, &env)
    }

    #[test]
    fn functions() {
        assert!(eval("defined(SET)").unwrap());
        assert!(!eval("defined(UNSET)").unwrap());
        assert!(eval("feature(LINUX_SPLICE)").unwrap());
        assert!(eval("version_atleast(2.4)").unwrap());
        assert!(eval("version_atleast(2.6)").unwrap());
        assert!(!eval("version_atleast(2.10)").unwrap());
        assert!(eval("version_before(3.0)").unwrap());
        assert!(eval("streq(a,a)").unwrap());
        assert!(eval("strneq(a,b)").unwrap());
        assert!(eval("1").unwrap());
        assert!(!eval("0").unwrap());
    }

    #[test]
    fn operators() {
        assert!(eval("!defined(UNSET) && 1").unwrap());
        assert!(eval("0 || defined(SET)").unwrap());
        assert!(!eval("!(1 || 0)").unwrap());
    }

    #[test]
    fn errors() {
        assert!(eval("nosuch(x)").is_err());
        assert!(eval("defined(a,b)").is_err());
        assert!(eval("defined(x").is_err());
        assert!(eval("1 1").is_err());
        assert!(eval("").is_err());
    }
}
