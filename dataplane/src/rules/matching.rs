//! Comparing a sample with a pattern list: ACL tests and map lookups share this.

use super::value::Value;
use percore_config::rules::pattern::{MatchMethod, PatternList, Patterns};

/// The position of the pattern `v` matches, `None` when none does. `found` and `bool`
/// lists have no pattern: they answer `Some(0)` when the sample passes.
pub fn find(list: &PatternList, v: &Value<'_>) -> Option<usize> {
    let icase = list.icase;
    match (&list.patterns, list.method) {
        (Patterns::None, MatchMethod::Found) => Some(0),
        (Patterns::None, _) => v.as_bool().then_some(0),
        (Patterns::Ints(ranges), MatchMethod::Len) => {
            let n = v.as_bytes().len() as i64;
            ranges.iter().position(|r| r.contains(n))
        }
        (Patterns::Ints(ranges), _) => {
            let n = v.as_int()?;
            ranges.iter().position(|r| r.contains(n))
        }
        (Patterns::Ips(nets), _) => {
            let ip = v.as_ip()?;
            // The most specific network wins, as in a map's address tree.
            nets.iter()
                .enumerate()
                .filter(|(_, n)| n.contains(ip))
                .max_by_key(|(i, n)| (n.prefix, std::cmp::Reverse(*i)))
                .map(|(i, _)| i)
        }
        (Patterns::Regexes(res), _) => {
            let b = v.as_bytes();
            res.iter().position(|re| re.is_match(&b))
        }
        (Patterns::Strings { list: pats, exact }, method) => {
            let b = v.as_bytes();
            let eq = |a: &[u8], p: &[u8]| {
                if icase {
                    a.eq_ignore_ascii_case(p)
                } else {
                    a == p
                }
            };
            match method {
                MatchMethod::Str if !icase => exact.get(b.as_ref()).copied(),
                MatchMethod::Str | MatchMethod::Bin => pats.iter().position(|p| eq(&b, p)),
                MatchMethod::Beg => pats
                    .iter()
                    .position(|p| b.len() >= p.len() && eq(&b[..p.len()], p)),
                MatchMethod::End => pats
                    .iter()
                    .position(|p| b.len() >= p.len() && eq(&b[b.len() - p.len()..], p)),
                MatchMethod::Sub => pats
                    .iter()
                    .position(|p| p.is_empty() || b.windows(p.len()).any(|w| eq(w, p))),
                MatchMethod::Dir => pats.iter().position(|p| word(&b, p, b"/?", icase)),
                MatchMethod::Dom => pats.iter().position(|p| word(&b, p, b"/?.:", icase)),
                _ => None,
            }
        }
    }
}

/// Whether `pat` (its own leading and trailing delimiters ignored) appears in `s` with
/// a delimiter or an end on both sides.
fn word(s: &[u8], pat: &[u8], delims: &[u8], icase: bool) -> bool {
    let is_delim = |c: &u8| delims.contains(c);
    let start = pat.iter().position(|c| !is_delim(c)).unwrap_or(pat.len());
    let end = pat
        .iter()
        .rposition(|c| !is_delim(c))
        .map_or(start, |e| e + 1);
    let pat = &pat[start..end];
    if pat.is_empty() || pat.len() > s.len() {
        return false;
    }
    (0..=s.len() - pat.len()).any(|i| {
        let bounded_left = i == 0 || is_delim(&s[i - 1]);
        let bounded_right = i + pat.len() == s.len() || is_delim(&s[i + pat.len()]);
        let w = &s[i..i + pat.len()];
        bounded_left
            && bounded_right
            && if icase {
                w.eq_ignore_ascii_case(pat)
            } else {
                w == pat
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use percore_config::rules::pattern::IntOp;

    fn list(m: MatchMethod, icase: bool, pats: &[&str]) -> PatternList {
        let mut l = PatternList::new(m, icase);
        for p in pats {
            l.add(p, IntOp::Eq).unwrap();
        }
        l
    }

    #[test]
    fn string_methods() {
        let v = Value::str(b"www.Site1.com");
        assert!(find(&list(MatchMethod::Sub, true, &["site1.com"]), &v).is_some());
        assert!(find(&list(MatchMethod::Sub, false, &["site1.com"]), &v).is_none());
        assert!(find(&list(MatchMethod::Dom, true, &["site1"]), &v).is_some());
        assert!(find(&list(MatchMethod::Dom, true, &["site"]), &v).is_none());
        let p = Value::str(b"/static/img/a.png");
        assert!(find(&list(MatchMethod::Dir, false, &["img"]), &p).is_some());
        assert!(find(&list(MatchMethod::Beg, false, &["/x", "/static"]), &p) == Some(1));
        assert!(find(&list(MatchMethod::End, false, &[".png"]), &p).is_some());
        assert!(find(&list(MatchMethod::Str, false, &["/static/img/a.png"]), &p).is_some());
        assert!(find(&list(MatchMethod::Len, false, &["17"]), &p).is_some());
    }

    #[test]
    fn ip_longest_prefix() {
        let l = list(MatchMethod::Ip, false, &["10.0.0.0/8", "10.1.0.0/16"]);
        assert_eq!(find(&l, &Value::Ip("10.1.2.3".parse().unwrap())), Some(1));
        assert_eq!(find(&l, &Value::str(b"10.2.0.1")), Some(0));
        assert_eq!(find(&l, &Value::str(b"11.0.0.1")), None);
    }
}
