//! Reads configuration files line by line: conditional blocks, section headers, and the
//! hand-off of each keyword line to the module of its section. Collects every problem
//! instead of stopping at the first, as HAProxy does.

use crate::cond;
use crate::error::{ConfigError, Diagnostic, Location, Severity};
use crate::files::page_fits;
use crate::http_errors::ErrorPage;
use crate::lexer::{split_line, EnvLookup};
use crate::model::{Config, Proxy, ProxyKind};
use crate::{global, http_errors, peers, proxy, resolvers, validate};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The section lines are currently being added to.
enum Section {
    /// Before any section header, or after a broken one: lines are refused.
    None,
    /// A section whose header was invalid: its lines are skipped silently.
    Broken,
    /// `global`.
    Global,
    /// A proxy section, as an index into `Parser::proxies` (or the defaults map).
    Proxy(ProxyRef),
    /// A `peers` section, as an index into `Config::peers`.
    Peers(usize),
    /// A `resolvers` section, as an index into `Config::resolvers`.
    Resolvers(usize),
    /// An `http-errors` section, as an index into `Config::http_errors`.
    HttpErrors(usize),
}

#[derive(Clone, Copy)]
enum ProxyRef {
    Defaults(usize),
    Proxy(usize),
}

/// One level of `.if` nesting.
struct CondFrame {
    /// Whether lines in the current branch are used.
    active: bool,
    /// Whether some branch of this block has already been taken.
    taken: bool,
    /// Whether the enclosing block is active.
    parent_active: bool,
    /// `.else` was seen.
    in_else: bool,
    location: Location,
}

/// Parser state across all files.
pub struct Parser<'e> {
    env: EnvLookup<'e>,
    config: Config,
    defaults: Vec<Proxy>,
    named_defaults: HashMap<String, usize>,
    section: Section,
    diagnostics: Vec<Diagnostic>,
}

impl<'e> Parser<'e> {
    /// A parser that expands variables through `env`.
    pub fn new(env: EnvLookup<'e>) -> Self {
        Self {
            env,
            config: Config::default(),
            defaults: Vec::new(),
            named_defaults: HashMap::new(),
            section: Section::None,
            diagnostics: Vec::new(),
        }
    }

    /// Adds a file, or every `*.cfg` file of a directory in lexical order.
    pub fn add_path(&mut self, path: &Path) {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.is_file()
                            && p.extension().is_some_and(|e| e == "cfg")
                            && !p
                                .file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    })
                    .collect(),
                Err(e) => {
                    self.global_alert(format!("cannot read directory '{}': {e}", path.display()));
                    return;
                }
            };
            files.sort();
            for file in files {
                self.add_file(&file);
            }
        } else {
            self.add_file(path);
        }
    }

    fn add_file(&mut self, path: &Path) {
        let name = path.display().to_string();
        let read = std::fs::File::open(path)
            .map_err(|e| e.to_string())
            .and_then(|f| crate::files::read_bounded(f, &name, crate::files::CONFIG_LIMIT));
        match read {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                self.add_text(path, &text);
                // As in HAProxy: a last line without its LF may be a cut file.
                if !text.is_empty() && !text.ends_with('\n') {
                    let location = Location {
                        file: Arc::new(path.to_path_buf()),
                        line: text.lines().count(),
                    };
                    let column = text.lines().last().map_or(0, str::len) + 1;
                    self.diagnostics.push(Diagnostic::alert(
                        &location,
                        format!("Missing LF on last line, file might have been truncated at position {column}."),
                    ));
                }
            }
            Err(e) => self.global_alert(format!("Could not open configuration file {name} : {e}")),
        }
    }

    fn global_alert(&mut self, message: String) {
        self.diagnostics.push(Diagnostic {
            severity: Severity::Alert,
            location: None,
            message,
        });
    }

    /// Parses the text of one file; `path` is used in messages only.
    pub fn add_text(&mut self, path: &Path, text: &str) {
        let file = Arc::new(path.to_path_buf());
        let mut conds: Vec<CondFrame> = Vec::new();
        // Each file starts outside any section, as in HAProxy.
        self.section = Section::None;
        for (index, line) in text.split('\n').enumerate() {
            let location = Location {
                file: Arc::clone(&file),
                line: index + 1,
            };
            let words = match split_line(line, self.env) {
                Ok(words) => words,
                Err(e) => {
                    if conds.last().is_none_or(|c| c.active) {
                        self.diagnostics.push(Diagnostic::alert(&location, e));
                    }
                    continue;
                }
            };
            let Some(first) = words.first() else { continue };
            if first.starts_with('.') {
                self.directive(&words, &location, &mut conds);
                continue;
            }
            if conds.last().is_some_and(|c| !c.active) {
                continue;
            }
            self.line(&words, &location);
        }
        for frame in conds {
            self.diagnostics.push(Diagnostic::alert(
                &frame.location,
                "'.if' block is not closed by '.endif' before the end of the file",
            ));
        }
    }

    fn directive(&mut self, words: &[String], location: &Location, conds: &mut Vec<CondFrame>) {
        let active = conds.last().is_none_or(|c| c.active);
        let rest = &words[1..];
        match words[0].as_str() {
            ".if" => {
                let value = if active {
                    self.condition(rest, location)
                } else {
                    false
                };
                conds.push(CondFrame {
                    active: active && value,
                    taken: value,
                    parent_active: active,
                    in_else: false,
                    location: location.clone(),
                });
            }
            ".elif" => {
                let Some(frame) = conds.last_mut() else {
                    self.diagnostics.push(Diagnostic::alert(
                        location,
                        "'.elif' without a matching '.if'",
                    ));
                    return;
                };
                if frame.in_else {
                    self.diagnostics
                        .push(Diagnostic::alert(location, "'.elif' after '.else'"));
                    return;
                }
                let (parent, taken) = (frame.parent_active, frame.taken);
                let value = parent && !taken && self.condition(rest, location);
                let frame = conds.last_mut().expect("checked above");
                frame.active = value;
                frame.taken |= value;
            }
            ".else" => match conds.last_mut() {
                Some(frame) if !frame.in_else => {
                    frame.in_else = true;
                    frame.active = frame.parent_active && !frame.taken;
                    frame.taken = true;
                }
                Some(_) => self.diagnostics.push(Diagnostic::alert(
                    location,
                    "'.else' appears twice in one block",
                )),
                None => self.diagnostics.push(Diagnostic::alert(
                    location,
                    "'.else' without a matching '.if'",
                )),
            },
            ".endif" => {
                let closed = conds.pop();
                if closed.is_none() {
                    self.diagnostics.push(Diagnostic::alert(
                        location,
                        "'.endif' without a matching '.if'",
                    ));
                }
            }
            ".notice" | ".warning" | ".alert" | ".diag" if active => {
                let severity = match words[0].as_str() {
                    ".notice" => Severity::Notice,
                    ".warning" => Severity::Warning,
                    ".alert" => Severity::Alert,
                    _ => Severity::Diag,
                };
                self.diagnostics.push(Diagnostic {
                    severity,
                    location: Some(location.clone()),
                    message: rest.join(" "),
                });
            }
            ".notice" | ".warning" | ".alert" | ".diag" => {}
            other if active => self.diagnostics.push(Diagnostic::alert(
                location,
                format!("unknown directive '{other}'"),
            )),
            _ => {}
        }
    }

    fn condition(&mut self, words: &[String], location: &Location) -> bool {
        match cond::evaluate(words, self.env) {
            Ok(value) => value,
            Err(e) => {
                self.diagnostics.push(Diagnostic::alert(location, e));
                false
            }
        }
    }

    fn line(&mut self, words: &[String], location: &Location) {
        if let Some(result) = self.section_header(words, location) {
            if let Err(e) = result {
                self.section = Section::Broken;
                self.diagnostics.push(Diagnostic::alert(location, e));
            }
            return;
        }
        let mut warnings = Vec::new();
        // Pages are checked against the buffer size known so far, as HAProxy does.
        let bufsize = self.config.global.tune.bufsize;
        let result = match self.section {
            Section::None => Err(format!("unknown keyword '{}' out of section", words[0])),
            Section::Broken => Ok(()),
            Section::Global => global::keyword(&mut self.config.global, words),
            Section::Proxy(r) => {
                let p = match r {
                    ProxyRef::Defaults(i) => &mut self.defaults[i],
                    ProxyRef::Proxy(i) => &mut self.config.proxies[i],
                };
                proxy::keyword(p, words, location, &mut warnings).and_then(|()| {
                    match (words[0].as_str(), p.errorfiles.last()) {
                        ("errorfile", Some(ErrorPage::File(f))) => page_fits(&f.response, bufsize),
                        _ => Ok(()),
                    }
                })
            }
            Section::Peers(i) => peers::keyword(&mut self.config.peers[i], words),
            Section::Resolvers(i) => resolvers::keyword(&mut self.config.resolvers[i], words),
            Section::HttpErrors(i) => {
                let section = &mut self.config.http_errors[i];
                http_errors::keyword(section, words).and_then(|()| {
                    section
                        .pages
                        .last()
                        .map_or(Ok(()), |f| page_fits(&f.response, bufsize))
                })
            }
        };
        for w in warnings {
            self.diagnostics.push(Diagnostic::warning(location, w));
        }
        if let Err(e) = result {
            self.diagnostics.push(Diagnostic::alert(location, e));
        }
    }

    /// Handles a section header; `None` when the line is not one.
    fn section_header(
        &mut self,
        words: &[String],
        location: &Location,
    ) -> Option<Result<(), String>> {
        let kind = match words[0].as_str() {
            "global" => {
                self.section = Section::Global;
                return Some(if words.len() > 1 {
                    Err("'global' takes no argument".into())
                } else {
                    Ok(())
                });
            }
            "defaults" => ProxyKind::Defaults,
            "frontend" => ProxyKind::Frontend,
            "backend" => ProxyKind::Backend,
            "listen" => ProxyKind::Listen,
            "peers" => {
                return Some(self.named_section(words, "peers").map(|name| {
                    self.config.peers.push(peers::new(name, location));
                    self.section = Section::Peers(self.config.peers.len() - 1);
                }))
            }
            "resolvers" => {
                return Some(self.named_section(words, "resolvers").map(|name| {
                    self.config.resolvers.push(resolvers::new(name, location));
                    self.section = Section::Resolvers(self.config.resolvers.len() - 1);
                }))
            }
            "http-errors" => {
                return Some(self.named_section(words, "http-errors").map(|name| {
                    self.config
                        .http_errors
                        .push(http_errors::new(name, location));
                    self.section = Section::HttpErrors(self.config.http_errors.len() - 1);
                }))
            }
            "userlist" | "mailers" | "program" | "ring" | "cache" | "fcgi-app" | "crt-store"
            | "traces" => {
                return Some(Err(format!(
                    "section '{}' is not supported by percore yet",
                    words[0]
                )))
            }
            _ => return None,
        };
        Some(self.proxy_header(kind, words, location))
    }

    fn named_section(&self, words: &[String], kind: &str) -> Result<String, String> {
        match words {
            [_, name] => {
                check_name(name)?;
                Ok(name.clone())
            }
            [_] => Err(format!("'{kind}' section needs a name")),
            _ => Err(format!(
                "'{kind}' takes exactly one name, got '{}'",
                words[1..].join(" ")
            )),
        }
    }

    fn proxy_header(
        &mut self,
        kind: ProxyKind,
        words: &[String],
        location: &Location,
    ) -> Result<(), String> {
        let keyword = kind.keyword();
        let (name, from) = match &words[1..] {
            [] if kind == ProxyKind::Defaults => ("", None),
            [] => return Err(format!("'{keyword}' section needs a name")),
            [name] => (name.as_str(), None),
            [from_kw, from] if kind == ProxyKind::Defaults && from_kw == "from" => ("", Some(from)),
            [name, from_kw, from] if from_kw == "from" => (name.as_str(), Some(from)),
            _ => {
                return Err(format!(
                    "'{keyword}' expects '{keyword} NAME [from DEFAULTS]', got '{}'",
                    words[1..].join(" ")
                ))
            }
        };
        if !name.is_empty() {
            check_name(name)?;
        }
        let base = match from {
            Some(from) => {
                let i = *self.named_defaults.get(from.as_str()).ok_or_else(|| {
                    format!("'{keyword} {name}' inherits from unknown defaults section '{from}'")
                })?;
                Some(&self.defaults[i])
            }
            None => self.defaults.last(),
        };
        let mut proxy = match base {
            Some(base) => {
                let mut p = base.clone();
                p.name = name.to_string();
                p.kind = kind;
                p.location = location.clone();
                p
            }
            None => Proxy::new(name, kind, location.clone()),
        };
        if kind == ProxyKind::Defaults {
            self.defaults.push(proxy);
            let index = self.defaults.len() - 1;
            if !name.is_empty() {
                self.named_defaults.insert(name.to_string(), index);
            }
            self.section = Section::Proxy(ProxyRef::Defaults(index));
            return Ok(());
        }
        if let Some(other) = self.config.proxies.iter().find(|p| {
            p.name == name
                && (p.kind.has_frontend() && kind.has_frontend()
                    || p.kind.has_backend() && kind.has_backend())
        }) {
            return Err(format!(
                "{keyword} '{name}' has the same name as the {} declared at {}",
                other.kind.keyword(),
                other.location
            ));
        }
        proxy.binds.clear();
        proxy.servers.clear();
        self.config.proxies.push(proxy);
        self.section = Section::Proxy(ProxyRef::Proxy(self.config.proxies.len() - 1));
        Ok(())
    }

    /// Checks cross-references and returns the model, or every alert found.
    pub fn finish(mut self) -> Result<(Config, Vec<Diagnostic>), ConfigError> {
        validate::check(&self.config, &mut self.diagnostics);
        if self
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Alert)
        {
            return Err(ConfigError {
                diagnostics: self.diagnostics,
            });
        }
        Ok((self.config, self.diagnostics))
    }
}

/// HAProxy's rule for section and object names.
pub fn check_name(name: &str) -> Result<(), String> {
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
    {
        Some(c) => Err(format!("character '{c}' is invalid in name '{name}'")),
        None if name.is_empty() => Err("empty name".into()),
        None => Ok(()),
    }
}
