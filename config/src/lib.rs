//! percore's configuration front end: HAProxy's configuration language in, a typed and
//! validated [`Config`] out. Pure: it reads the files it is given and nothing else, opens
//! no socket and starts nothing.

pub mod check;
pub mod cond;
pub mod error;
pub mod files;
pub mod global;
pub mod http_errors;
pub mod lexer;
pub mod log;
pub mod model;
pub mod parser;
pub mod peers;
pub mod planned;
pub mod proxy;
pub mod resolvers;
pub mod rules;
pub mod units;
pub mod validate;

pub use error::{ConfigError, Diagnostic, Location, Severity};
pub use model::*;

use std::path::{Path, PathBuf};

/// A loaded configuration and the non-fatal messages produced while loading it.
pub type Loaded = (Config, Vec<Diagnostic>);

/// Loads `paths` in order (files, or directories of `*.cfg` files), expanding variables
/// from the process environment.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, ConfigError> {
    load_with_env(paths, &|name| std::env::var(name).ok())
}

/// Like [`load`], with an explicit variable lookup.
pub fn load_with_env(paths: &[PathBuf], env: lexer::EnvLookup<'_>) -> Result<Loaded, ConfigError> {
    let mut parser = parser::Parser::new(env);
    for p in paths {
        parser.add_path(p);
    }
    parser.finish()
}

/// Parses configuration text held in memory (`name` appears in messages).
pub fn parse_str(
    name: &Path,
    text: &str,
    env: lexer::EnvLookup<'_>,
) -> Result<Loaded, ConfigError> {
    let mut parser = parser::Parser::new(env);
    parser.add_text(name, text);
    parser.finish()
}
