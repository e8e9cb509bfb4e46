//! Error pages: `errorfile`, `errorloc`/`errorloc302`/`errorloc303` and `errorfiles` in
//! proxies, and the `http-errors` sections that `errorfiles` imports from. A proxy's
//! pages are kept in declaration order and resolved once the whole configuration is
//! read, so that a section may be declared after the proxies that use it, as in
//! HAProxy, and a later line overrides an earlier one for the same status.

use crate::error::Location;
use crate::model::{Config, Named, Proxy};
use crate::planned::unsupported;
use std::sync::Arc;

/// The status codes whose responses can be replaced, as in HAProxy.
pub const CUSTOMIZABLE: [u16; 17] = [
    200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 425, 429, 500, 501, 502, 503, 504,
];

/// An `http-errors NAME` section.
#[derive(Debug, Clone)]
pub struct HttpErrors {
    /// Its name, as `errorfiles` refers to it.
    pub name: String,
    /// Its `errorfile` lines.
    pub pages: Vec<ErrorFile>,
    /// Where it starts.
    pub location: Location,
}

/// A complete HTTP response sent instead of the built-in one for a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFile {
    /// Status code it replaces.
    pub status: u16,
    /// The raw response (empty: close without answering, HAProxy's `/dev/null` idiom).
    pub response: Arc<[u8]>,
}

/// One error page line of a proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorPage {
    /// `errorfile` or `errorloc*`: a response for one status.
    File(ErrorFile),
    /// `errorfiles NAME [CODE...]`: the pages of a section (all, or these codes).
    Import {
        /// The `http-errors` section.
        section: Named,
        /// The codes taken; empty for all.
        codes: Vec<u16>,
    },
}

/// An empty `http-errors` section.
pub fn new(name: String, location: &Location) -> HttpErrors {
    HttpErrors {
        name,
        pages: Vec::new(),
        location: location.clone(),
    }
}

/// Applies one line of an `http-errors` section.
pub fn keyword(s: &mut HttpErrors, words: &[String]) -> Result<(), String> {
    match words[0].as_str() {
        "errorfile" => {
            let page = errorfile(&words[1..])?;
            s.pages.retain(|p| p.status != page.status);
            s.pages.push(page);
            Ok(())
        }
        kw => Err(unsupported(kw, "http-errors")),
    }
}

/// Parses a status code that can be customized.
pub fn status(kw: &str, code: &str) -> Result<u16, String> {
    code.parse()
        .ok()
        .filter(|c| CUSTOMIZABLE.contains(c))
        .ok_or_else(|| format!("'{kw}': status code '{code}' cannot be customized"))
}

/// Parses `CODE FILE` and reads the file: a complete HTTP/1 response, or nothing.
pub fn errorfile(args: &[String]) -> Result<ErrorFile, String> {
    let [code, file] = args else {
        return Err("'errorfile' expects a status code and a file".into());
    };
    let status = status("errorfile", code)?;
    let response = read_response(file).map_err(|e| format!("'errorfile {code}': {e}"))?;
    Ok(ErrorFile {
        status,
        response: response.into(),
    })
}

/// Reads a file holding a complete HTTP/1 response (or nothing at all).
pub fn read_response(file: &str) -> Result<Vec<u8>, String> {
    let response = crate::files::read_regular(file, crate::files::PAGE_LIMIT)?;
    complete_response(file, response)
}

/// Checks that what `file` held is a complete HTTP/1 response (or nothing at all).
pub fn complete_response(file: &str, response: Vec<u8>) -> Result<Vec<u8>, String> {
    if !response.is_empty() && !response.starts_with(b"HTTP/1.") {
        return Err(format!(
            "'{file}' must hold a complete HTTP response starting with 'HTTP/1.'"
        ));
    }
    Ok(response)
}

/// Parses `errorloc CODE URL` (`redirect` is 302, or 303 for `errorloc303`): a
/// redirect to `URL`.
pub fn errorloc(redirect: u16, args: &[String]) -> Result<ErrorFile, String> {
    let (kw, reason) = if redirect == 303 {
        ("errorloc303", "See Other")
    } else {
        ("errorloc", "Found")
    };
    let [code, url] = args else {
        return Err(format!("'{kw}' expects a status code and a URL"));
    };
    let status = status(kw, code)?;
    let response = format!(
        "HTTP/1.1 {redirect} {reason}\r\nContent-length: 0\r\nLocation: {url}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
    );
    Ok(ErrorFile {
        status,
        response: response.into_bytes().into(),
    })
}

/// Parses `errorfiles NAME [CODE...]`.
pub fn import(args: &[String], location: &Location) -> Result<ErrorPage, String> {
    let (name, codes) = args
        .split_first()
        .ok_or("'errorfiles' expects the name of an 'http-errors' section")?;
    let codes = codes
        .iter()
        .map(|c| status("errorfiles", c))
        .collect::<Result<_, _>>()?;
    Ok(ErrorPage::Import {
        section: Named {
            name: name.clone(),
            location: location.clone(),
        },
        codes,
    })
}

impl Config {
    /// The `http-errors` section called `name`.
    pub fn http_errors(&self, name: &str) -> Option<&HttpErrors> {
        self.http_errors.iter().find(|s| s.name == name)
    }

    /// A proxy's error pages, one per status, later lines winning; imports of unknown
    /// sections (refused by validation) contribute nothing.
    pub fn error_pages(&self, p: &Proxy) -> Vec<ErrorFile> {
        let mut out: Vec<ErrorFile> = Vec::new();
        let mut add = |page: &ErrorFile| {
            out.retain(|o| o.status != page.status);
            out.push(page.clone());
        };
        for page in &p.errorfiles {
            match page {
                ErrorPage::File(f) => add(f),
                ErrorPage::Import { section, codes } => {
                    let Some(s) = self.http_errors(&section.name) else {
                        continue;
                    };
                    for f in &s.pages {
                        if codes.is_empty() || codes.contains(&f.status) {
                            add(f);
                        }
                    }
                }
            }
        }
        out
    }
}
